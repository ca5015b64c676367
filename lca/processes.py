"""The processes of one host, started through shims and watched through pidfds (trio, Linux).

:class:`Processes` serves what the supervisor asks of a host (the
``scs.launcher.Launcher`` seam: start, wait, kill, terminate), plus what an
agent adds: a signal, the list of what runs, and :meth:`Processes.recover`,
which finds again, after the agent itself was restarted, the processes it had
started and the exits it missed. Each process runs under its shim
(:mod:`lca.shim`), which records its pids and how it ended in the state
directory (:mod:`lca.records`).

Why an exit seen here is **proof of death**: the command's pid is watched
through a pidfd, which refers to that very process; the pidfd is opened only
while the shim has not recorded an exit, that is, while the command has not
been reaped, so the pid cannot have been reused; and signals go through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import trio

from .records import (
    Record,
    RecordError,
    forget,
    is_same_process,
    read_exit,
    read_records,
    record_path,
)


class ProcessError(Exception):
    """An operation on a process could not be done; the message says why, in one line."""


class StartError(ProcessError):
    """The process could not be started (no such command, no permission, ...)."""


class AlreadyRunningError(StartError):
    """A process of that name runs already: a second copy is never started."""

    def __init__(self, name: str, pid: int) -> None:
        super().__init__(f"{name} runs already (pid {pid}): not started twice")
        self.pid = pid


class NotWatchedError(ProcessError):
    """No process of that name and pid is watched here: nothing was signalled."""


#: Seconds a shim has to report its command started.
START_TIMEOUT = 10.0


@dataclass
class _Watched:
    record: Record
    pidfd: int  # the command's
    shim_fd: int | None  # the shim's (None: it is gone)
    ended: str | None = None  # set once the exit is known
    waiter: trio.Event | None = None  # a wait() reading the pidfds: set when it stops
    gone: bool = False  # the command and its shim have ended


class Processes:
    """What runs on this host under this agent (see the module docstring)."""

    def __init__(self, state_dir: Path, *, python: str = sys.executable) -> None:
        self.state_dir = state_dir
        self.python = python
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._watched: dict[str, _Watched] = {}

    def running(self) -> dict[str, int]:
        """``name -> pid`` of every process that runs (its exit not known yet)."""
        return {n: w.record.pid for n, w in self._watched.items() if w.ended is None}

    async def start(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        before_spawn: Callable[[], object] | None = None,
    ) -> int:
        """Start ``argv`` as ``name`` under a shim, in a session of its own; its pid.

        ``before_spawn`` is called right before the process is made, with nothing
        awaited in between (a supervisor's "may I still act?"): what it raises
        propagates, and nothing is started.

        Raises:
            AlreadyRunningError: ``name`` runs already.
            StartError: it could not be started (the reason in one line).
        """
        current = self._watched.get(name)
        if current is not None and current.ended is None:
            raise AlreadyRunningError(name, current.record.pid)
        if before_spawn is not None:
            before_spawn()
        read_end, write_end = os.pipe()
        try:
            with _open_log(cwd, log_path) as out:
                shim = await trio.lowlevel.open_process(
                    [
                        self.python,
                        "-m",
                        "lca.shim",
                        str(self.state_dir),
                        name,
                        str(cwd),
                        str(write_end),
                        "--",
                        *argv,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(write_end,),
                    env=None if env is None else dict(env),
                )
        except OSError as exc:
            os.close(read_end)
            raise StartError(f"{name}: cannot start: {exc.strerror or exc}") from None
        finally:
            os.close(write_end)
        try:
            await shim.wait()  # the shim's first process: it leaves at once (see lca.shim)
            with trio.move_on_after(START_TIMEOUT):
                await _read_pid(read_end)
        finally:
            os.close(read_end)
        try:
            record = Record.from_json(record_path(self.state_dir, name).read_text(), name)
        except (OSError, RecordError):
            raise StartError(f"{name}: its shim did not start it") from None
        watched = self._watch(record)
        if watched is None:
            how = read_exit(self.state_dir, name, record.pid) or "ended at once"
            raise StartError(f"{name}: {how}")
        return record.pid

    def _watch(self, record: Record) -> _Watched | None:
        """Watch ``record``'s command; None when it has ended already (its exit recorded)."""
        try:
            pidfd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return None
        # Opened before the exit is recorded: the command was not reaped, its pid is its own.
        if read_exit(self.state_dir, record.name, record.pid) is not None or not is_same_process(
            record.pid, record.started
        ):
            os.close(pidfd)
            return None
        shim_fd = None
        with contextlib.suppress(ProcessLookupError):
            shim_fd = os.pidfd_open(record.shim_pid)
            if not is_same_process(record.shim_pid, record.shim_started):
                os.close(shim_fd)
                shim_fd = None
        watched = _Watched(record, pidfd, shim_fd)
        self._watched[record.name] = watched
        return watched

    def recover(self) -> tuple[dict[str, int], dict[str, tuple[int, str]], list[str]]:
        """After a restart of the agent: watch again what runs, from the records.

        Returns ``(running, ended, problems)``: ``name -> pid`` found running,
        ``name -> (pid, how it ended)`` for exits not delivered yet (call :meth:`delivered`
        once the supervisor has them), and a line per record that could not be read.
        """
        records, problems = read_records(self.state_dir)
        running: dict[str, int] = {}
        ended: dict[str, tuple[int, str]] = {}
        for record in records:
            if record.name in self._watched:
                continue
            how = read_exit(self.state_dir, record.name, record.pid)
            watched = None if how is not None else self._watch(record)
            if watched is not None:
                running[record.name] = record.pid
            else:
                how = how or "exited while the agent was away (how: unknown)"
                ended[record.name] = (record.pid, how)
                self._watched[record.name] = _Watched(record, -1, None, how)
        return running, ended, problems

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """Wait until process ``pid`` of ``name`` ends; how it ended ("exit code 1",
        "killed by SIGKILL", ...).

        Raises:
            NotWatchedError: no such process is watched here.
        """
        watched = self._get(name, pid)
        if watching is not None:
            watching()
        if watched.ended is None:
            waiter = watched.waiter = trio.Event()
            try:
                await _ended(watched)
                watched.gone = True
            finally:
                watched.waiter = None  # also when cancelled: then others read the pidfds
                waiter.set()
            how = read_exit(self.state_dir, name, pid)
            watched.ended = how or "exited (its shim is gone: how is unknown)"
            self._close(watched)
        return watched.ended

    def delivered(self, name: str, pid: int) -> None:
        """The supervisor has been told that ``pid`` of ``name`` ended: forget it."""
        watched = self._watched.get(name)
        if watched is not None and watched.record.pid == pid and watched.ended is not None:
            del self._watched[name]
            forget(self.state_dir, watched.record)

    def signal(self, name: str, pid: int, signum: int) -> None:
        """Send ``signum`` to process ``pid`` of ``name`` (through its pidfd).

        Raises:
            NotWatchedError: no such process runs here (nothing is signalled).
        """
        watched = self._get(name, pid)
        if watched.ended is not None:
            raise NotWatchedError(f"{name} pid {pid} has ended: not signalled")
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(watched.pidfd, signum)

    def kill(self, name: str, pid: int) -> None:
        """SIGKILL process ``pid`` of ``name`` now (fencing); one that ended is no error."""
        watched = self._get(name, pid)
        if watched.ended is None:
            self.signal(name, pid, signal.SIGKILL)

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """SIGCONT and SIGTERM, then SIGKILL after ``timeout`` s; returns once it is gone."""
        watched = self._get(name, pid)
        if watched.ended is not None:
            return
        self.signal(name, pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.signal(name, pid, signal.SIGTERM)
        with trio.move_on_after(timeout):
            await self._gone(watched)
            return
        self.kill(name, pid)
        await self._gone(watched)

    async def _gone(self, watched: _Watched) -> None:
        """Until the process and its shim have ended (a wait() in progress is waited on
        instead of reading the same pidfds)."""
        while not watched.gone and watched.ended is None:
            if watched.waiter is not None:
                await watched.waiter.wait()  # it ended, or that wait() was cancelled
            elif watched.pidfd >= 0:
                await _ended(watched)
                watched.gone = True
            else:
                return

    def _get(self, name: str, pid: int) -> _Watched:
        watched = self._watched.get(name)
        if watched is None or watched.record.pid != pid:
            raise NotWatchedError(f"{name} pid {pid} is not a process watched here")
        return watched

    def _close(self, watched: _Watched) -> None:
        for fd in (watched.pidfd, watched.shim_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        watched.pidfd, watched.shim_fd = -1, None

    def close(self) -> None:
        """Close every pidfd (the processes keep running)."""
        for watched in self._watched.values():
            self._close(watched)


async def _ended(watched: _Watched) -> None:
    """Until the command has ended and its shim, having recorded how, has gone too (so
    that a stop leaves nothing of it behind)."""
    await trio.lowlevel.wait_readable(watched.pidfd)
    if watched.shim_fd is not None:
        with trio.move_on_after(START_TIMEOUT):
            await trio.lowlevel.wait_readable(watched.shim_fd)


def _open_log(cwd: Path, log_path: Path) -> BinaryIO:
    """``log_path`` opened for appending, ``cwd`` made first (quick local file calls)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return log_path.open("ab")


async def _read_pid(fd: int) -> None:
    """Wait until the shim writes the command's pid (or closes the pipe)."""
    os.set_blocking(fd, False)
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            continue
        if not data or data.endswith(b"\n"):
            return
