"""The ADDP echo peer as a separate process, run from trio (``bench/bench_addp.py``).

``tests/helpers/addp_echo_peer.py <addp-timeout>`` serves ADDP links and echoes
every message; :func:`echo_peer` starts it, reads the port it prints, and
kills it on the way out. A peer in its own process can be stopped with a signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
#: The echo peer run as a separate process: ``addp_echo_peer.py <addp-timeout>``.
PEER = ROOT / "tests" / "helpers" / "addp_echo_peer.py"
#: Time allowed for a peer process to print its port.
PEER_START_TIMEOUT = 20.0


@asynccontextmanager
async def echo_peer(timeout: float) -> AsyncIterator[tuple[trio.Process, int]]:
    """Run ``tests/helpers/addp_echo_peer.py <timeout>``; yield the process and its port.

    On exit the peer is continued (in case it is stopped), killed and reaped.
    """
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(PEER), f"{timeout:g}"], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(PEER_START_TIMEOUT):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1024)
                if not chunk:
                    raise RuntimeError(f"echo peer exited before printing its port: {line!r}")
                line += chunk
        word, _, port = line.decode().strip().partition(" ")
        if word != "PORT":
            raise RuntimeError(f"echo peer said {line!r}, expected 'PORT <n>'")
        yield proc, int(port)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
