"""The supervisor's glue for adopted processes: pidfd on the very process, real processes.

An adopted process's exit is reported only when that process exits (its
pidfd); a pid that cannot be watched is asked about again and reported as
such, never as an exit.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from confserv.logs.eventlog import EventLog
from scs.observations import LinkUp
from scs.status import ServerStatus
from scs.supervisor import Supervisor

from .test_core import scs_settings


def supervisor(tmp: Path) -> tuple[Supervisor, io.StringIO]:
    out = io.StringIO()
    return Supervisor(scs_settings(tmp), EventLog("scs", out, verbose="all")), out


def logged(out: io.StringIO, event_id: int) -> list[str]:
    return [line for line in out.getvalue().splitlines() if f" {event_id:05d} " in line]


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_an_adopted_process_is_reported_when_that_process_exits(tmp_path: Path) -> None:
    sup, out = supervisor(tmp_path)
    proc = sleeper()
    try:
        async with trio.open_nursery() as nursery:
            sup._nursery = sup._term = nursery
            nursery.start_soon(sup._adopt, "a", proc.pid)
            with trio.fail_after(30):
                while sup.core.members["a"].watched != proc.pid:
                    await sup.changed.wait()
            assert logged(out, 40108)
            assert not logged(out, 40102)
            proc.kill()
            with trio.fail_after(30):
                while sup.core.members["a"].watched is not None:
                    await sup.changed.wait()
            nursery.cancel_scope.cancel()
    finally:
        proc.kill()
        proc.wait()
    (line,) = logged(out, 40102)
    assert f"pid {proc.pid} exited" in line
    assert sup.adopted == {}


async def test_a_pid_that_cannot_be_watched_is_asked_about_not_reported_as_an_exit(
    tmp_path: Path,
) -> None:
    for answer, expect in ((None, "does not answer either"), (0, "still answers as pid")):
        sup, out = supervisor(tmp_path)
        pid = gone_pid()
        sup.core.step(LinkUp("a", ServerStatus(role="primary", epoch=1, pid=pid)), 0.0)

        async def ask(name: str, pid: int = pid, answer: int | None = answer) -> Any:
            return (None, "no answer in time") if answer is None else (ServerStatus(pid=pid), "")

        sup._ask_status = ask  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            sup._nursery = sup._term = nursery
            await sup._adopt("a", pid)
            nursery.cancel_scope.cancel()
        (line,) = logged(out, 40110)
        assert f"pid {pid} cannot be watched (no such process on this host)" in line
        assert expect in line
        assert not logged(out, 40102)  # no exit was seen, none is reported
        assert not logged(out, 40304)  # and nothing forced
        assert sup.adopted == {}


async def test_fencing_kills_the_very_process_watched_and_nothing_else(tmp_path: Path) -> None:
    sup, out = supervisor(tmp_path)
    proc, bystander = sleeper(), sleeper()
    try:
        async with trio.open_nursery() as nursery:
            sup._nursery = sup._term = nursery
            nursery.start_soon(sup._adopt, "a", proc.pid)
            with trio.fail_after(30):
                while sup.core.members["a"].watched != proc.pid:
                    await sup.changed.wait()
            sup._fence("a", bystander.pid)  # not the process watched: refused
            assert "pid" in logged(out, 40503)[0]
            sup._fence("a", proc.pid)  # through its pidfd
            with trio.fail_after(30):
                while sup.core.members["a"].watched is not None:
                    await sup.changed.wait()
            nursery.cancel_scope.cancel()
        assert proc.wait(timeout=30) == -9
        assert bystander.poll() is None
    finally:
        for p in (proc, bystander):
            p.kill()
            p.wait()


class SlowLauncher:
    """A launcher whose start takes a while (a shim spawning, an agent far away)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.terminated: list[tuple[str, int]] = []
        self.starting = trio.Event()

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        self.starting.set()
        await trio.sleep(0.3)
        self.started.append(name)
        return 4242

    async def wait(self, name: str, pid: int, *, watching: Any = None) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    def recorded(self, name: str) -> int | None:
        return None

    def kill(self, name: str, pid: int) -> None:
        raise AssertionError("nothing is fenced here")

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        self.terminated.append((name, pid))


async def test_a_start_under_way_when_the_supervisor_stops_is_stopped_too(
    tmp_path: Path,
) -> None:
    launcher = SlowLauncher()
    settings = scs_settings(tmp_path)
    sup = Supervisor(settings, EventLog("scs", io.StringIO(), verbose="all"), launcher=launcher)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await launcher.starting.wait()
        nursery.cancel_scope.cancel()  # SIGINT while the first server is being started
    # Before the fix the start was cancelled half-way: the process ran on, known to nobody.
    assert launcher.started
    assert all((name, 4242) in launcher.terminated for name in launcher.started)
