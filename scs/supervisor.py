"""The supervisor at run time: processes, management links, and the decision loop.

Thin trio code around :class:`scs.core.SupervisorCore`, fed typed observations
(:mod:`scs.observations`; a status is parsed here, at the edge, by
:func:`scs.status.parse_status`): one task per server
keeps a management link (:class:`~scs.server_links.ServerLinks`) and reports
link up, role pushes and link loss; one task per started or adopted process
waits for it to exit, through the :class:`~scs.launcher.Launcher` (by
default :class:`~scs.host_launcher.HostLauncher`: this host's processes, by
the agent's own code; another host's through its agent,
:class:`~scs.agent_launcher.AgentLauncher`);
the decision loop serves the core's deadlines. Every ``step`` is
synchronous, so the core is only ever touched by one task at a time. With
``[scs] database`` the supervisor acts only while it holds the supervisor
lease (:class:`~scs.supervisor_lease.SupervisorLease`), in terms (see
:class:`Supervisor`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from confserv.logs.eventlog import EventLog

from . import events, view
from .actions import Action, Adopt, Demote, Emit, Fence, Promote, Redirect, Start, Stop
from .agent_launcher import AgentLauncher
from .config import ScsSettings
from .core import SupervisorCore
from .election import BecomeActive, BecomeStandby
from .host_launcher import HostLauncher
from .hosts import HostSpec
from .launcher import (
    AdoptError,
    AlreadyRunningError,
    Launcher,
    LaunchError,
    NotActingError,
    NotWatchedError,
)
from .observations import (
    AdoptionFailed,
    Booted,
    DemoteDone,
    LinkLost,
    LinkUp,
    Observation,
    ProcessExited,
    ProcessStarted,
    PromoteDone,
    StartFailed,
    StatusSeen,
    Tick,
)
from .server_links import ServerLinks, parsed
from .status import ServerStatus
from .supervisor_lease import SupervisorLease

#: Seconds a server found at start-up (or whose pid cannot be watched) has to answer a status.
ASK_TIMEOUT = 3.0


class Supervisor:
    """Runs a :class:`SupervisorCore` against real processes and sockets.

    With ``[scs] database`` it acts only while it holds the supervisor lease
    (:class:`~scs.supervisor_lease.SupervisorLease`): each time it becomes active
    a *term* begins, with a fresh core that learns what runs from the links and
    the agents (adopting, never starting twice) and finishes what a former
    active left half done; when it stops acting the term's tasks are cancelled
    and the servers run on. Standby, it keeps every link and sends nothing.
    Without a database there is one term, for the process's whole life.
    """

    def __init__(
        self,
        settings: ScsSettings,
        log: EventLog,
        rng: random.Random | None = None,
        launcher: Launcher | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.rng = rng
        self.core = SupervisorCore(settings, rng)
        #: The supervisor lease (None without ``[scs] database``: always acting).
        self.lease: SupervisorLease | None = None
        if settings.redundancy is not None:
            self.lease = SupervisorLease(
                settings.redundancy,
                name or socket.gethostname(),
                log,
                control_port=settings.control_port,
                on_change=self._lease_changed,
            )
        #: The supervisor's own host's processes; the other hosts' go through their agents.
        self.launcher: Launcher = (
            launcher
            if launcher is not None
            else HostLauncher(settings.state_dir, before_spawn=self.epoch_now)
        )
        self.agents: dict[str, AgentLauncher] = {
            host.name: self._agent(host) for host in settings.hosts.values() if host.has_agent
        }
        self.processes: dict[str, int] = {}  # started by us and not yet exited: name -> pid
        self.adopted: dict[str, int] = {}  # found running and watched: name -> pid
        #: Each server's watch link, and the commands sent on it.
        self.links = ServerLinks(settings, self._observe, self._superseded)
        self._wake = trio.Event()
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        #: The acting term's nursery (None: not acting): every action runs in it.
        self._term: trio.Nursery | None = None
        self._terms = 0  # counts terms begun and ended: a term runs only if still current
        #: The last status of each server whose link is up, and when each was heard.
        self.seen: dict[str, ServerStatus] = {}
        self.heard: dict[str, float] = {}
        self.changed = trio.Event()  # set (and replaced) whenever anything happened

    def _agent(self, host: HostSpec) -> AgentLauncher:
        assert host.agent_port is not None
        assert host.agent_secret is not None
        where = f"{host.address}:{host.agent_port}"

        def on_link(running: dict[str, int] | None, why: str) -> None:
            if self._stopping:
                return  # the supervisor's own way out, not a lost host
            if running is None:
                self.log.emit(events.AGENT_LOST, host=host.name, where=where, reason=why)
            else:
                self.log.emit(events.AGENT_UP, host=host.name, where=where, running=len(running))

        return AgentLauncher(
            host.address,
            host.agent_port,
            host.agent_secret,
            host.name,
            epoch=self.epoch_now,
            tls=host.tls,
            on_link=on_link,
            addp=host.addp,
            on_superseded=self._superseded,
        )

    # -- acting or not --------------------------------------------------------------

    @property
    def acting(self) -> bool:
        """Whether this supervisor acts now (a term is under way and, with a lease, it
        may send commands)."""
        return self._term is not None and (self.lease is None or self.lease.acting())

    def epoch_now(self) -> int:
        """The supervisor epoch a command sent now carries (0 without a lease);
        NotActingError when none may be sent (read right before each send)."""
        if self._term is None:
            raise NotActingError("this supervisor is not acting")
        return 0 if self.lease is None else self.lease.epoch_now()

    def _superseded(self, newest: int) -> None:
        if self.lease is not None:
            self.lease.superseded(newest)

    def _lease_changed(self, change: BecomeActive | BecomeStandby) -> None:
        if isinstance(change, BecomeActive):
            self._begin_term()
        else:
            self._end_term()

    def _begin_term(self) -> None:
        """Act from now: a fresh core, told what the links see; it adopts what runs."""
        if self._nursery is None or self._stopping:
            return
        self.core = SupervisorCore(self.settings, self.rng)
        self.processes.clear()  # the last term's watches were cancelled with it
        self.adopted.clear()
        self._terms += 1
        self._nursery.start_soon(self._act, self._terms)

    def _end_term(self) -> None:
        """Stop acting at once: the term's tasks are cancelled, its servers run on."""
        term, self._term = self._term, None
        self._terms += 1  # a term begun but not yet running never runs
        if term is not None:
            term.cancel_scope.cancel()
        self._touch()

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every server's row: the core's while acting, the links' while standby."""
        if self._term is not None:
            return self.core.snapshot(now)
        pair_of = {m: p.name for p in self.settings.pairs for m in p.members}
        servers = [
            (name, spec.machine, pair_of.get(name), spec.kind)
            for name, spec in self.settings.servers.items()
        ]
        return view.watched(servers, self.seen, self.heard, now)

    def describe(self) -> dict[str, Any]:
        """Which supervisor is active, at which epoch, and which are standby."""
        if self.lease is None:
            return {"name": None, "mode": "single", "acting": self.acting, "epoch": None}
        return self.lease.describe()

    def launcher_of(self, name: str) -> Launcher:
        """The launcher of server ``name``'s host: its agent's, or this host's own."""
        machine = self.settings.servers[name].machine
        return self.agents[machine] if machine is not None else self.launcher

    # -- feeding the core -------------------------------------------------------

    def feed(self, obs: Observation, *, wake: bool = True) -> None:
        """Step the core with ``obs`` at the current time, and carry out its actions.

        ``wake`` re-arms the decision loop (its next deadline may have moved);
        the loop's own tick passes False, or it would never sleep.
        """
        if self._term is None:
            self._touch()
            return  # not acting: no decision (a new term learns what the links see)
        actions = self.core.step(obs, trio.current_time())
        self._carry_out(actions)
        if wake:
            self._wake.set()
        if actions or wake:
            self._touch()

    def _observe(self, name: str, obs: LinkUp | StatusSeen | LinkLost) -> None:
        """What a watch link saw: kept for the view and a next term, and fed while acting."""
        if isinstance(obs, LinkLost):
            self.seen.pop(name, None)
        else:
            self.seen[name] = obs.status
            self.heard[name] = trio.current_time()
        self.feed(obs)

    def _touch(self) -> None:
        changed, self.changed = self.changed, trio.Event()
        changed.set()

    def _carry_out(self, actions: list[Action]) -> None:
        assert self._term is not None
        nursery = self._term
        for action in actions:
            if isinstance(action, Emit):
                self.log.emit(action.event, **action.fields)
            elif isinstance(action, Start):
                nursery.start_soon(self._start, action.server, action.why)
            elif isinstance(action, Stop):
                nursery.start_soon(self._stop, action.server)
            elif isinstance(action, Promote):
                nursery.start_soon(self._promote, action.server, action.force, action.over_epoch)
            elif isinstance(action, Demote):
                nursery.start_soon(self._demote, action.server)
            elif isinstance(action, Redirect):
                nursery.start_soon(self._redirect, action.proxy, action.server)
            elif isinstance(action, Adopt):
                nursery.start_soon(self._adopt, action.server, action.pid)
            elif isinstance(action, Fence):
                self._fence(action.server, action.pid)

    # -- running ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; on the way out (``[scs] on-stop``) stop every
        process of the term, while still acting, or leave them to a standby.

        The agent links and the supervisor lease run shielded, in an outer
        nursery: they outlast the supervising (also its cancellation), so that
        the servers of other hosts can still be stopped, at this supervisor's
        epoch, on the way out; then the lease is given up and they are cancelled.
        """
        scopes = [trio.CancelScope(shield=True) for _ in range(len(self.agents) + 1)]
        async with trio.open_nursery() as links:
            for agent, scope in zip(self.agents.values(), scopes, strict=False):
                await links.start(_shielded, agent.run, scope)
            try:
                await self._supervise(links, scopes[-1], task_status)
            finally:
                self._stopping = True
                if self.lease is not None:
                    with trio.CancelScope(shield=True):
                        await self.lease.resign()
                for scope in scopes:
                    scope.cancel()

    async def _supervise(
        self, links: trio.Nursery, lease_scope: trio.CancelScope, task_status: trio.TaskStatus[None]
    ) -> None:
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
                    nursery.start_soon(self.links.watch, name)
                if self.lease is None:
                    self.log.emit(events.SUPERVISOR_SINGLE)
                    self._begin_term()
                else:
                    await links.start(_shielded, self.lease.run, lease_scope)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                if self.settings.on_stop == "stop-servers" and self._term is not None:
                    await self.stop_all()
                self._end_term()

    async def _act(self, number: int) -> None:
        """One acting term: the decision loop, until the term is ended (or the supervisor)."""
        if number != self._terms:
            return  # ended before it began
        async with trio.open_nursery() as term:
            self._term = term
            self.feed(Booted())
            for name, status in list(self.seen.items()):
                self.feed(LinkUp(name, status))  # what runs already: adopted, not started
            while True:
                deadline = self.core.next_deadline()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wake.wait()
                self._wake = trio.Event()
                self.feed(Tick(), wake=False)

    async def stop_all(self) -> None:
        """Terminate every child, then kill those still alive after their stop-timeout."""
        async with trio.open_nursery() as nursery:
            for name, pid in [*self.processes.items(), *self.adopted.items()]:
                nursery.start_soon(self._terminate, name, pid)

    # -- processes --------------------------------------------------------------

    async def _start(self, name: str, why: str) -> None:
        spec, term = self.settings.servers[name], self._terms
        if name in self.processes or name in self.adopted:
            return
        if why.startswith("autostart"):
            # Already running (the supervisor itself was restarted)? Watch it instead
            # of starting a copy that could not bind its ports: first the process its
            # host's records know (one stopped by SIGSTOP would never answer).
            running = self.launcher_of(name).recorded(name)
            if running is None:
                status, _reason = await self._ask_status(name)
                running = status.pid if status is not None else None
            if running is not None:
                await self._adopt(name, running)
                return
        if name in self.processes or name in self.adopted or not self.core.may_start(name):
            return  # it answered meanwhile, as a pid that is being adopted (40108)
        if not spec.command:
            self.log.emit(events.START_FAILED, server=name, reason="no command in its section")
            return
        logfile = spec.working_directory / f"{name}.log"
        try:
            self.epoch_now()  # acting? (an agent's start reads it again as it is sent)
            # Shielded: a start under way when the supervisor stops (or its term ends)
            # completes and its pid is recorded, so stop_all stops it; cancelled, it
            # left the process running, known to nobody (an orphan found by make test).
            with trio.CancelScope(shield=True):
                pid = await self.launcher_of(name).start(
                    name, list(spec.command), spec.working_directory, logfile
                )
        except AlreadyRunningError as exc:
            await self._adopt(name, exc.pid)  # its host runs it already: never a second copy
            return
        except NotActingError:
            return  # this term is ending: nothing was sent
        except LaunchError as exc:
            self.log.emit(events.START_FAILED, server=name, reason=exc)
            self.feed(StartFailed(name, str(exc)))
            return
        self.log.emit(events.PROCESS_STARTED, server=name, pid=pid, why=f" ({why})" if why else "")
        if term != self._terms:
            return  # its term ended meanwhile: the next one finds it running and adopts it
        self.processes[name] = pid
        self.feed(ProcessStarted(name, pid))
        # (on cancellation it stays in self.processes, for stop_all)
        how = await self.launcher_of(name).wait(name, pid)
        self.processes.pop(name, None)
        self.feed(ProcessExited(name, pid, how))

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
            self.feed(ProcessStarted(name, pid, adopted=True))

        try:
            how = await self.launcher_of(name).wait(name, pid, watching=watching)
        except AdoptError as exc:
            status, _reason = await self._ask_status(name)
            answer = status.pid if status is not None else None
            self.feed(AdoptionFailed(name, pid, answer, str(exc)))
            return
        # (on cancellation it stays in self.adopted, for stop_all)
        self.adopted.pop(name, None)
        self.feed(ProcessExited(name, pid, how))

    def _fence(self, name: str, pid: int) -> None:
        """SIGKILL the very process watched as ``pid`` (never a pid since reused)."""
        try:
            self.epoch_now()  # (own host: no message carries it; the rule holds the same)
            self.launcher_of(name).kill(name, pid)
        except NotActingError:
            pass  # this term is ending
        except NotWatchedError as exc:
            self.log.emit(events.ACTION_FAILED, action="fence", server=name, reason=exc)

    async def _ask_status(self, name: str) -> tuple[ServerStatus | None, str]:
        return parsed(await self.links.command(name, lambda m: m.status(), timeout=ASK_TIMEOUT))

    async def _terminate(self, name: str, pid: int) -> None:
        spec = self.settings.servers[name]
        try:
            self.epoch_now()
        except NotActingError:
            return  # this term is ending: the new active decides
        await self.launcher_of(name).terminate(name, pid, spec.stop_timeout)

    async def _stop(self, name: str) -> None:
        pid = self.processes.get(name, self.adopted.get(name))
        if pid is not None:
            await self._terminate(name, pid)

    # -- management links -------------------------------------------------------

    async def _promote(self, name: str, force: bool, over: int | None) -> None:
        with contextlib.suppress(NotActingError):
            answer = await self.links.command(
                name,
                lambda m: m.switch_to_primary(
                    force=force, over=over, supervisor_epoch=self.epoch_now()
                ),
            )
            status, reason = parsed(answer)
            self.feed(PromoteDone(name, status, reason))

    async def _demote(self, name: str) -> None:
        with contextlib.suppress(NotActingError):
            status, reason = await self.links.command(
                name, lambda m: m.switch_to_backup(supervisor_epoch=self.epoch_now())
            )
            self.feed(DemoteDone(name, status is not None, reason))

    async def _redirect(self, proxy: str, server: str) -> None:
        target = self.settings.servers[server]

        async def follow(m: Any) -> dict[str, Any]:
            answer: dict[str, Any] = await m.follow(
                target.host, target.management_port, supervisor_epoch=self.epoch_now()
            )
            return answer

        try:
            status, reason = await self.links.command(proxy, follow)
        except NotActingError:
            return
        if status is None:
            self.log.emit(events.ACTION_FAILED, action="redirect", server=proxy, reason=reason)
        else:
            self.log.emit(
                events.PROXIES_REDIRECTED,
                proxy=proxy,
                server=server,
                where=f"{target.host}:{target.management_port}",
            )


async def _shielded(
    run: Callable[..., Awaitable[None]],
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run(task_status=...)`` inside ``scope`` (shielded: only its own cancel ends it)."""
    with scope:
        await run(task_status=task_status)
