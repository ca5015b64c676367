"""The supervisor at run time: processes, management links, and the decision loop.

Thin trio code around :class:`scs.core.SupervisorCore`: one task per server
keeps a management link (ADDP on, with the section's options) and reports
link up, role pushes and link loss; one task per started or adopted process
waits for it to exit, through the :class:`~scs.launcher.Launcher` (by
default :class:`~scs.local_launcher.LocalLauncher`: this host's processes);
the decision loop serves the core's deadlines. Every core call is
synchronous, so the core is only ever touched by one task at a time.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from addp import LinkEnded
from confserv.client.session import open_management
from confserv.logs.eventlog import EventLog
from confserv.wire.errors import ConfServError, RequestError

from . import events
from .actions import Action, Adopt, Demote, Emit, Fence, Promote, Redirect, Start, Stop
from .config import ScsSettings
from .core import SupervisorCore
from .launcher import AdoptError, Launcher, LaunchError, NotWatchedError
from .local_launcher import LocalLauncher

#: Seconds between attempts to reach a management port that does not answer.
RECONNECT = 0.05
#: Seconds a server found at start-up (or whose pid cannot be watched) has to answer a status.
ASK_TIMEOUT = 3.0


class Supervisor:
    """Runs a :class:`SupervisorCore` against real processes and sockets."""

    def __init__(
        self,
        settings: ScsSettings,
        log: EventLog,
        rng: random.Random | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.core = SupervisorCore(settings, rng)
        self.launcher: Launcher = launcher if launcher is not None else LocalLauncher()
        self.processes: dict[str, int] = {}  # started by us and not yet exited: name -> pid
        self.adopted: dict[str, int] = {}  # found running and watched: name -> pid
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.changed = trio.Event()  # set (and replaced) whenever anything happened

    # -- feeding the core -------------------------------------------------------

    def feed(self, fn: Callable[..., list[Action]], *args: Any, wake: bool = True) -> None:
        """Call a core method with the time appended, and carry out its actions.

        ``wake`` re-arms the decision loop (its next deadline may have moved);
        the loop's own tick passes False, or it would never sleep.
        """
        actions = fn(*args, trio.current_time())
        self._carry_out(actions)
        if wake:
            self._wake.set()
        if actions or wake:
            changed, self.changed = self.changed, trio.Event()
            changed.set()

    def _carry_out(self, actions: list[Action]) -> None:
        assert self._nursery is not None
        for action in actions:
            if isinstance(action, Emit):
                self.log.emit(action.event, **action.fields)
            elif isinstance(action, Start):
                self._nursery.start_soon(self._start, action.server, action.why)
            elif isinstance(action, Stop):
                self._nursery.start_soon(self._stop, action.server)
            elif isinstance(action, Promote):
                self._nursery.start_soon(self._promote, action.server, action.force)
            elif isinstance(action, Demote):
                self._nursery.start_soon(self._demote, action.server)
            elif isinstance(action, Redirect):
                self._nursery.start_soon(self._redirect, action.proxy, action.server)
            elif isinstance(action, Adopt):
                self._nursery.start_soon(self._adopt, action.server, action.pid)
            elif isinstance(action, Fence):
                self._fence(action.server, action.pid)

    # -- running ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; on the way out stop every process we started."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.log.emit(
                    events.STARTED,
                    pid=os.getpid(),
                    count=len(self.settings.servers),
                    file=self.settings.file,
                )
                for name in self.settings.servers:
                    nursery.start_soon(self._watch, name)
                self.feed(lambda now: self.core.start(now))
                task_status.started()
                while True:
                    deadline = self.core.next_deadline()
                    with trio.move_on_at(math.inf if deadline is None else deadline):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    self.feed(self.core.tick, wake=False)
        finally:
            with trio.CancelScope(shield=True):
                await self.stop_all()

    async def stop_all(self) -> None:
        """Terminate every child, then kill those still alive after their stop-timeout."""
        async with trio.open_nursery() as nursery:
            for name, pid in [*self.processes.items(), *self.adopted.items()]:
                nursery.start_soon(self._terminate, name, pid)

    # -- processes --------------------------------------------------------------

    async def _start(self, name: str, why: str) -> None:
        spec = self.settings.servers[name]
        if name in self.processes or name in self.adopted:
            return
        if why.startswith("autostart"):
            # Already running (the supervisor itself was restarted)? Watch it
            # instead of starting a second copy that could not bind its ports.
            status, _reason = await self._ask_status(name)
            if status is not None and _pid_of(status):
                await self._adopt(name, _pid_of(status))
                return
        if name in self.processes or name in self.adopted or not self.core.may_start(name):
            return  # it answered meanwhile, as a pid that is being adopted (40108)
        if not spec.command:
            self.log.emit(events.START_FAILED, server=name, reason="no command in its section")
            return
        logfile = spec.working_directory / f"{name}.log"
        try:
            pid = await self.launcher.start(
                name, list(spec.command), spec.working_directory, logfile
            )
        except LaunchError as exc:
            self.log.emit(events.START_FAILED, server=name, reason=exc)
            self.feed(self.core.start_failed, name, str(exc))
            return
        self.processes[name] = pid
        self.log.emit(events.PROCESS_STARTED, server=name, pid=pid, why=f" ({why})" if why else "")
        self.feed(self.core.process_started, name, pid)
        how = await self.launcher.wait(name, pid)  # (on cancellation it stays, for stop_all)
        self.processes.pop(name, None)
        self.feed(self.core.process_exited, name, pid, how)

    async def _adopt(self, name: str, pid: int) -> None:
        """Watch ``pid``, which the server answers as (the launcher's ``wait``); report its exit.

        Only the exit of that very process is reported. A pid that cannot be
        watched (no such process here) is not an exit: the server is asked
        again and the core told what it answered (``adoption_failed``).
        """
        if name in self.adopted or name in self.processes:
            return

        def watching() -> None:
            self.adopted[name] = pid
            self.log.emit(events.PROCESS_ADOPTED, server=name, pid=pid)
            self.feed(self.core.process_started, name, pid)

        try:
            how = await self.launcher.wait(name, pid, watching=watching)
        except AdoptError as exc:
            status, _reason = await self._ask_status(name)
            answer = _pid_of(status) if status is not None else None
            self.feed(self.core.adoption_failed, name, pid, answer or None, str(exc))
            return
        # (on cancellation it stays in self.adopted, for stop_all)
        self.adopted.pop(name, None)
        self.feed(self.core.process_exited, name, pid, how)

    def _fence(self, name: str, pid: int) -> None:
        """SIGKILL the very process watched as ``pid`` (never a pid since reused)."""
        try:
            self.launcher.kill(name, pid)
        except NotWatchedError as exc:
            self.log.emit(events.ACTION_FAILED, action="fence", server=name, reason=exc)

    async def _ask_status(self, name: str) -> tuple[dict[str, Any] | None, str]:
        return await self._command(name, lambda m: m.status(), timeout=ASK_TIMEOUT)

    async def _terminate(self, name: str, pid: int) -> None:
        await self.launcher.terminate(name, pid, self.settings.servers[name].stop_timeout)

    async def _stop(self, name: str) -> None:
        pid = self.processes.get(name, self.adopted.get(name))
        if pid is not None:
            await self._terminate(name, pid)

    # -- management links -------------------------------------------------------

    async def _watch(self, name: str) -> None:
        spec = self.settings.servers[name]
        while True:
            up = False
            try:
                async with open_management(
                    spec.host,
                    spec.management_port,
                    spec.management_secret,
                    addp=spec.addp,
                    timeout=max(2.0, spec.addp.local_timeout * 2),
                ) as m:
                    status = await m.watch()
                    up = True
                    self.feed(self.core.link_up, name, _fields(status))
                    while True:
                        # Role changes are pushed; a status now and then keeps
                        # "last heard" and the serial fresh in the view.
                        with trio.move_on_after(self.settings.status_interval * 5):
                            push = await m.push()
                            self.feed(self.core.role_seen, name, _fields(push))
                            continue
                        self.feed(self.core.role_seen, name, _fields(await m.status()))
            except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
                if up:
                    self.feed(self.core.link_lost, name, _reason(exc))
            await trio.sleep(RECONNECT)

    async def _command(
        self,
        name: str,
        call: Callable[[Any], Awaitable[dict[str, Any]]],
        timeout: float = 5.0,
    ) -> tuple[dict[str, Any] | None, str]:
        spec = self.settings.servers[name]
        try:
            with trio.fail_after(30):
                async with open_management(
                    spec.host, spec.management_port, spec.management_secret, timeout=timeout
                ) as m:
                    return _fields(await call(m)), ""
        except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
            return None, _reason(exc)

    async def _promote(self, name: str, force: bool) -> None:
        status, reason = await self._command(name, lambda m: m.switch_to_primary(force=force))
        self.feed(self.core.promote_done, name, status, reason)

    async def _demote(self, name: str) -> None:
        status, reason = await self._command(name, lambda m: m.switch_to_backup())
        self.feed(self.core.demote_done, name, status is not None, reason)

    async def _redirect(self, proxy: str, server: str) -> None:
        target = self.settings.servers[server]

        async def follow(m: Any) -> dict[str, Any]:
            answer: dict[str, Any] = await m.session.request(
                "follow", host=target.host, port=target.management_port
            )
            return answer

        status, reason = await self._command(proxy, follow)
        if status is None:
            self.log.emit(events.ACTION_FAILED, action="redirect", server=proxy, reason=reason)
        else:
            self.log.emit(
                events.PROXIES_REDIRECTED,
                proxy=proxy,
                server=server,
                where=f"{target.host}:{target.management_port}",
            )


def _pid_of(status: dict[str, Any]) -> int:
    """The pid a status answer gives (0: none)."""
    pid = status.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else 0


def _fields(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ("re", "ok", "push")}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RequestError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
