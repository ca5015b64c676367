"""The :class:`~scs.launcher.Launcher` for this host: fork, signals and pidfds (Linux).

A process it started is its child: the pid stays that process's until it is
reaped here (by :meth:`LocalLauncher.wait`), so killing it by pid is safe. A
process found running (adopted) is watched through a pidfd, which refers to
that very process even if its pid is later reused; it is signalled only
through that pidfd.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import trio

from .launcher import AdoptError, LaunchError, NotWatchedError


class LocalLauncher:
    """Starts and watches the processes of this host (see module docstring)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, int], trio.Process] = {}  # started, not yet reaped
        self._pidfds: dict[tuple[str, int], int] = {}  # adopted and watched: pidfd

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """See :meth:`scs.launcher.Launcher.start`."""
        try:
            with _open_log(cwd, log_path) as out:
                proc = await trio.lowlevel.open_process(
                    argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        except OSError as exc:
            raise LaunchError(str(exc)) from exc
        self._children[name, proc.pid] = proc
        return proc.pid

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """See :meth:`scs.launcher.Launcher.wait`."""
        proc = self._children.get((name, pid))
        if proc is not None:
            if watching is not None:
                watching()
            try:
                code = await proc.wait()
            finally:
                if proc.returncode is not None:
                    self._children.pop((name, pid), None)
            return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            why = "no such process on this host" if isinstance(exc, ProcessLookupError) else exc
            raise AdoptError(str(why)) from exc
        self._pidfds[name, pid] = fd
        try:
            if watching is not None:
                watching()
            await trio.lowlevel.wait_readable(fd)
        finally:
            del self._pidfds[name, pid]
            os.close(fd)
        return "exited (adopted process)"

    def recorded(self, name: str) -> int | None:
        """See :meth:`scs.launcher.Launcher.recorded`: none (its children are the
        supervisor's own to remember)."""
        return None

    def kill(self, name: str, pid: int) -> None:
        """See :meth:`scs.launcher.Launcher.kill`."""
        with contextlib.suppress(ProcessLookupError):
            proc = self._children.get((name, pid))
            if proc is not None:
                proc.kill()  # our child: its pid is ours until we reap it
                return
            fd = self._pidfds.get((name, pid))
            if fd is not None:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                return
            raise NotWatchedError(f"pid {pid} is no longer the process watched")

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """See :meth:`scs.launcher.Launcher.terminate`."""
        proc = self._children.get((name, pid))
        if proc is not None:
            await _terminate_child(proc, timeout)
        else:
            await _terminate_other(pid, timeout)


def _open_log(cwd: Path, log_path: Path) -> BinaryIO:
    """``log_path`` opened for appending, ``cwd`` made first (quick local file calls)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return log_path.open("ab")


async def _terminate_child(proc: trio.Process, timeout: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGCONT)  # a paused child cannot act on SIGTERM
        proc.terminate()
    except ProcessLookupError:
        return
    with trio.move_on_after(timeout):
        await proc.wait()
        return
    proc.kill()
    await proc.wait()


async def _terminate_other(pid: int, timeout: float) -> None:
    """Stop a process that is not our child, through a pidfd of its own (no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone (this is for stopping it, not a proof of anything)
    try:
        try:
            signal.pidfd_send_signal(fd, signal.SIGCONT)
            signal.pidfd_send_signal(fd, signal.SIGTERM)
        except ProcessLookupError:
            return
        with trio.move_on_after(timeout):
            await trio.lowlevel.wait_readable(fd)
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
