"""The supervisor's process seam: how it starts, watches, kills and stops a server's process.

:class:`Launcher` is all the supervisor asks of the processes it supervises;
:class:`scs.local_launcher.LocalLauncher` serves it for this host (fork,
signals, pidfd), and a host agent (issue 13) or a simulation can serve it
instead. It is about processes only: it knows nothing of Configuration
Servers, management ports or pairs.

The promise that makes an exit **proof of death**: :meth:`Launcher.wait`
returns only when the very process ``pid`` (one this launcher started, or
one it was asked to watch) has ended, never for another process that
happens to reuse the pid; and :meth:`Launcher.kill` signals only that very
process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class LauncherError(Exception):
    """A launcher operation could not be done; the message is one line saying why."""


class LaunchError(LauncherError):
    """The process could not be started (no such command, no permission, ...)."""


class AlreadyRunningError(LaunchError):
    """The host runs a process for that server already (``pid``): not started twice;
    the supervisor watches that one instead."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class AdoptError(LauncherError):
    """The process cannot be watched (no such process on this host, ...): its exit would
    never be seen, so nothing about it may be concluded from the launcher."""


class NotWatchedError(LauncherError):
    """``pid`` is not (or no longer) a process this launcher watches for the server: it is
    not signalled, since the pid may since belong to something else."""


class NotActingError(LauncherError):
    """This supervisor is not acting (standby, or its supervisor lease may run out
    before the command lands): nothing was sent."""


class Launcher(Protocol):
    """Starts, watches, kills and stops processes for the supervisor (see module docstring)."""

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """Start ``argv`` for server ``name`` in ``cwd`` (created if missing), stdout and stderr
        appended to ``log_path``, in a session of its own; its pid. Raises :class:`LaunchError`."""
        ...

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """Wait until process ``pid`` of ``name`` ends; how it ended ("exit code 1", "killed by
        SIGKILL", ...).

        Works for a pid :meth:`start` returned and for one found running (adopted).
        ``watching``, if given, is called once, as soon as the process is watched
        (before it ends), so that the caller never counts a pid as watched that is
        not. Raises :class:`AdoptError` when the process cannot be watched (then
        ``watching`` is never called).
        """
        ...

    def recorded(self, name: str) -> int | None:
        """The pid this launcher's own records say runs for ``name`` (its host's records of
        the processes started under a shim, or what its agent reported), or None. A
        supervisor started again adopts that process at once instead of first asking a
        server that may not answer (one stopped by SIGSTOP accepts the connection and
        says nothing)."""
        ...

    def kill(self, name: str, pid: int) -> None:
        """SIGKILL process ``pid`` of ``name`` now (fencing). Only a process this launcher
        watches (or started and has not reaped) is signalled; else :class:`NotWatchedError`.
        A process already gone is no error."""
        ...

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """Stop process ``pid`` of ``name``: SIGCONT (a paused process cannot act on SIGTERM),
        SIGTERM, then SIGKILL if it still runs after ``timeout`` seconds. Returns once it is
        gone (or was already)."""
        ...
