"""cfgctl given the wrong kind of port says so in one line, soon (issue 15).

A client port given where a management port is expected used to wait for
the server's auth-timeout and print a 157-line traceback; a management port
given as a client port answered "authenticate first". A pipe closed by the
reader (``cfgctl export | head``) used to end with "cannot connect: Broken pipe".
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import trio

from ..helpers.system import BIN, PASSWORD, SECRET, System, healthy

ENV = {**os.environ, "CFG_SECRET": SECRET, "CFG_PASSWORD": PASSWORD}
CFGCTL = str(BIN / "cfgctl")


def cfgctl(*args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([CFGCTL, *args], capture_output=True, text=True, env=ENV, timeout=60)
    return done.returncode, done.stderr, time.monotonic() - started


def export_into_a_closed_pipe(server: str) -> tuple[int, bytes]:
    export = subprocess.Popen(
        [CFGCTL, "export", "--server", server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert export.stdout is not None
    export.stdout.readline()
    export.stdout.close()  # as `| head -1` does
    _, err = export.communicate(timeout=60)
    return export.returncode, err


async def test_wrong_ports_and_a_closed_pipe(tmp_path: Path) -> None:
    system = System(tmp_path, proxy=False)
    system.start()
    try:
        await system.wait(healthy, timeout=60)
        client = f"127.0.0.1:{system.ports['confserv']}"
        management = f"127.0.0.1:{system.management_ports['confserv']}"

        code, err, took = await trio.to_thread.run_sync(cfgctl, "status", "--server", client)
        assert took < 4.5
        assert code == 1
        assert err == (
            f"cfgctl: {client} sent no management challenge within 3 s: is it a client port? "
            "(give the server's management-port)\n"
        )
        code, err, _ = await trio.to_thread.run_sync(cfgctl, "get", "Host", "--server", management)
        assert code == 1
        assert err == (
            f"cfgctl: {management} is a management or control port (it sent a challenge): "
            "give the server's client port\n"
        )
        assert await trio.to_thread.run_sync(export_into_a_closed_pipe, client) == (0, b"")
    finally:
        system.stop()
