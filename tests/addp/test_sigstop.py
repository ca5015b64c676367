"""Real processes over loopback TCP: a SIGSTOPped peer is detected by ADDP.

Wall clock here, so the test waits for the detection under a generous
deadline and checks the bound loosely; ``bench/bench_addp.py`` measures it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from addp import AddpOptions, AddpTimeout
from addp.transport import connect

PEER = Path(__file__).parent.parent / "helpers" / "addp_echo_peer.py"

pytestmark = pytest.mark.integration


@pytest.fixture
def echo_peer() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, str(PEER), "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"peer said {line!r}"
        yield proc, int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("timeout", [0.3, 0.5])
async def test_a_sigstopped_peer_is_declared_lost(
    echo_peer: tuple[subprocess.Popen[str], int], timeout: float
) -> None:
    proc, port = echo_peer
    with trio.fail_after(30):
        async with connect("127.0.0.1", port, AddpOptions.addp(timeout)) as link:
            await link.send("ping")
            assert await link.receive() == "ping"
            os.kill(proc.pid, signal.SIGSTOP)
            stopped = trio.current_time()
            with pytest.raises(AddpTimeout):
                await link.receive()
            detected = trio.current_time() - stopped
    # Never before the timeout; the upper bound gets slack for a loaded machine.
    assert timeout <= detected <= 2 * timeout + 2.0
