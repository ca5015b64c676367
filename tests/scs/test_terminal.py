"""``scs -f`` on a terminal: the live table and the event log share one screen.

The supervisor runs under a pseudo-terminal (the ``pty`` module) of 160 x 60;
what it writes is fed to a terminal emulator (``pyte``), and the screen is
read as an operator would see it. After a SIGKILL of the primary the whole
failover story is on the screen above the table: detected, decided,
promoted, proxies redirected, the old primary back, healthy. Before, the
table's refreshes erased the lines under it (4 of 30 survived).
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import termios
from pathlib import Path

import pyte
import trio

from ..helpers.system import BIN, System, healthy, primary_of

COLUMNS, ROWS = 160, 60


async def test_the_failover_story_stays_on_screen_above_the_live_table(tmp_path: Path) -> None:
    system = System(tmp_path, verbose="standard")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm"}
    proc = await trio.lowlevel.open_process(
        [str(BIN / "scs"), "-f", str(system.scs_conf)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    os.set_blocking(master, False)

    async def pump() -> None:
        """Read the terminal all along (a full pty would stop the supervisor's writes)."""
        while True:
            await trio.lowlevel.wait_readable(master)
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return  # the supervisor has gone
            if not chunk:
                return
            stream.feed(chunk)

    def shown() -> str:
        return "\n".join(screen.display)

    async def until(text: str, timeout: float = 30.0) -> None:
        with trio.fail_after(timeout):
            while text not in shown():
                await trio.sleep(0.05)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            rows = await system.wait(healthy, timeout=60)
            await until("Solution Control Server started")
            old = primary_of(rows)
            os.kill(int(rows[old]["pid"]), signal.SIGKILL)
            await until(" 40309 ", timeout=60)  # healthy again
            await trio.sleep(1.0)  # a few refreshes of the table: nothing above may go
            screen_now = shown()
            for event in ("40301", "40304", "40306", "40308", "40101", "40309"):
                assert f" {event} " in screen_now, f"{event} is not on the screen:\n{screen_now}"
            # one story, in order: detected (death), decided (force), promoted, redirected,
            # restarted, healthy; never "silent ... no proof" first for a kill
            story = [screen_now.index(f" {e} ") for e in ("40301", "40304", "40306", "40309")]
            assert story == sorted(story), screen_now
            assert " 40302 " not in screen_now, screen_now
            assert "┃ server" in screen_now  # the table is there too, below the log
            assert screen_now.index(" 40309 ") < screen_now.index("┃ server")
            nursery.cancel_scope.cancel()
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.move_on_after(30):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
        system.stop()
        os.close(master)
