"""The supervisor's own host, served by the agent's own code: :class:`lca.processes.Processes`.

A host with no agent in ``scs.conf`` is the supervisor's, and its servers
are started, watched and stopped in-process by exactly what an ``lca``
runs on every other host: each under a shim (:mod:`lca.shim`) that records
its pids and its exit in the state directory (``[scs] state-dir``). So a
server outlives a supervisor that was killed, and a supervisor started
again finds it (and its pid's identity) from the records, as an agent does.

A process the records do not know (one an operator started by hand, found
running because it answers) is still watched, through a pidfd, by
:class:`~scs.local_launcher.LocalLauncher`'s code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from lca.processes import AlreadyRunningError as HostAlreadyRunning
from lca.processes import NotWatchedError as HostNotWatched
from lca.processes import Processes, StartError

from .launcher import AlreadyRunningError, LaunchError, NotWatchedError
from .local_launcher import LocalLauncher

_log = logging.getLogger("scs.host")


class HostLauncher(LocalLauncher):
    """The :class:`~scs.launcher.Launcher` of the supervisor's own host (module docstring)."""

    def __init__(self, state_dir: Path, before_spawn: Callable[[], object] | None = None) -> None:
        super().__init__()
        #: Called right before each process is made (the supervisor's epoch_now: a
        #: start decided while acting and held up, by a SIGSTOP say, until the
        #: supervisor may no longer act is not carried out; the agents refuse such a
        #: start by its epoch, this host has nobody else to ask).
        self.before_spawn = before_spawn
        self.processes = Processes(state_dir)
        running, ended, problems = self.processes.recover()
        for line in problems:
            _log.warning("state: %s", line)
        for name, (pid, _how) in ended.items():
            # It ended while no supervisor ran: nothing waits for it; a server that
            # does not answer is started again by its autostart.
            self.processes.delivered(name, pid)
        self.recovered = running

    def _knows(self, name: str, pid: int) -> bool:
        return self.processes.running().get(name) == pid

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """See :meth:`scs.launcher.Launcher.start`: under a shim, never a second copy."""
        try:
            return await self.processes.start(
                name, argv, cwd, log_path, before_spawn=self.before_spawn
            )
        except HostAlreadyRunning as exc:
            raise AlreadyRunningError(str(exc), exc.pid) from None
        except StartError as exc:
            raise LaunchError(str(exc)) from None

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """See :meth:`scs.launcher.Launcher.wait`."""
        if not self._knows(name, pid):
            return await super().wait(name, pid, watching=watching)
        how = await self.processes.wait(name, pid, watching=watching)
        self.processes.delivered(name, pid)
        return how

    def recorded(self, name: str) -> int | None:
        """See :meth:`scs.launcher.Launcher.recorded`: from the shims' records."""
        return self.processes.running().get(name)

    def kill(self, name: str, pid: int) -> None:
        """See :meth:`scs.launcher.Launcher.kill`."""
        if not self._knows(name, pid):
            super().kill(name, pid)
            return
        try:
            self.processes.kill(name, pid)
        except HostNotWatched as exc:
            raise NotWatchedError(str(exc)) from None

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """See :meth:`scs.launcher.Launcher.terminate`."""
        if not self._knows(name, pid):
            await super().terminate(name, pid, timeout)
            return
        try:
            await self.processes.terminate(name, pid, timeout)
        except HostNotWatched:
            return  # it ended meanwhile
