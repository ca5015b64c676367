"""Redundant supervisors in the simulation: two (or three) real ``scs`` of one installation.

:class:`RedundantWorld` is a :class:`~tests.sim.world.World` whose
:meth:`~RedundantWorld.start_supervisor` starts every supervisor process
(``scs-a``, ``scs-b``, ...), each the real :class:`scs.supervisor.Supervisor`
on a copy of the installation's scs.conf with ``[scs] database`` naming a
section whose store is the world's :class:`~tests.sim.store.SimDatabase` as that
process reaches it (its own gate, its own faults: the process body runs under
``use_store_opener``, as the servers' do). Each supervisor's launcher is the
host's (:class:`OneCopyLauncher`): a server already running is reported as
such (``AlreadyRunningError``, as an agent or the host's shim would), never
started twice, and the supervisor's epoch is read again as each action is
carried out (as an agent does on receipt). The world records what the
judge needs (:mod:`tests.sim.redundant_schedule`): each supervisor epoch's
taker (40701), each command a server admitted (20125) with the supervisor
process that sent it (told by the connection it came on), each launcher action.
:func:`pause_at_command` stops a supervisor with a command on its way.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import trio

from addp.transport import current_network
from confserv.client.session import ManagementClient
from confserv.logs import events as cs_events
from confserv.logs.catalog import LogEvent
from confserv.store.instance import Instance
from confserv.wire.errors import UnavailableError
from scs import events as scs_events
from scs.config import ScsSettings, load_scs_settings
from scs.launcher import AlreadyRunningError, LaunchError, NotActingError
from scs.supervisor import Supervisor

from .process import SimLauncher, SimProcess
from .system import Files
from .world import World

#: The supervisor processes (each its own ``--name``).
SUPERVISORS = ("scs-a", "scs-b")
#: ``[scs] supervisor-lease-ttl``, ``-renew``, ``-retry`` (seconds).
SUP_TTL, SUP_RENEW, SUP_RETRY = 2.0, 0.5, 0.25


def _scs_lines(database: str) -> str:
    return (
        f"database = {database}\nsupervisor-lease-ttl = {SUP_TTL:g}\n"
        f"supervisor-lease-renew = {SUP_RENEW:g}\nsupervisor-lease-retry = {SUP_RETRY:g}\n"
    )


@functools.cache
def redundant_settings(directory: Path) -> ScsSettings:
    """The installation's scs.conf with ``[scs] database = scsdb`` (written once per worker)."""
    text = (directory / "scs.conf").read_text()
    assert text.startswith("[scs]\n")
    text = "[scs]\n" + _scs_lines("scsdb") + text[len("[scs]\n") :]
    text += "[scsdb]\ndbengine = sqlite\ndbname = simulated.sqlite\n"
    path = directory / "scs-redundant.conf"
    path.write_text(text)
    path.chmod(0o600)
    return load_scs_settings(path)


@dataclass(frozen=True)
class Admitted:
    """A supervisor command a server admitted (its 20125 line)."""

    at: float
    server: str
    server_pid: int
    epoch: int
    command: str
    sender: int | None  # the supervisor process's pid (None: not known)


@dataclass(frozen=True)
class Launched:
    """An action a supervisor's launcher carried out."""

    at: float
    supervisor: int  # pid
    action: str
    server: str
    acting: bool


class OneCopyLauncher(SimLauncher):
    """The launcher of the servers' host, as each supervisor reaches it (module docstring)."""

    def __init__(self, world: RedundantWorld, owner: SimProcess) -> None:
        super().__init__(world, owner)
        self.rworld = world
        self.supervisor: Supervisor | None = None

    def _acting(self, action: str, server: str) -> bool:
        """Whether this supervisor acts as ``action`` is carried out (recorded either way).
        A start refused here is one :class:`scs.host_launcher.HostLauncher` refuses too
        (its ``before_spawn``, the supervisor's ``epoch_now``, asked right before the
        spawn), as an agent does by the command's epoch."""
        sup = self.supervisor
        acting = sup is not None and sup.acting
        self.rworld.launched.append(
            Launched(trio.current_time(), self.owner.pid, action, server, acting)
        )
        return acting

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """Start ``name`` unless the host runs it already (then its pid, as AlreadyRunningError)."""
        if not await self._running():
            raise LaunchError("the supervisor is dead")
        if not self._acting("start", name):
            raise NotActingError("refused at the host: not the acting supervisor")
        for proc in list(self.world.by_pid.values()):
            if proc.name == name and not proc.gate.dead:
                raise AlreadyRunningError(f"{name} runs already as pid {proc.pid}", proc.pid)
        proc = await self.world.spawn_command(name, argv)
        self._watched[name, proc.pid] = proc
        return proc.pid

    def kill(self, name: str, pid: int) -> None:
        """SIGKILL, if this supervisor acts (else NotActingError, as an agent refuses)."""
        if self.owner.gate.dead:
            return
        if not self._acting("kill", name):
            raise NotActingError("refused at the host: not the acting supervisor")
        super().kill(name, pid)

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """SIGTERM (then SIGKILL), if this supervisor acts as it is carried out."""
        if not await self._running():
            return
        if self._acting("terminate", name):
            await super().terminate(name, pid, timeout)


class RedundantWorld(World):
    """A world with several supervisors (module docstring)."""

    def __init__(
        self, seed: int, files: Files, template: Any, names: tuple[str, ...] = SUPERVISORS
    ) -> None:
        super().__init__(seed, files, template)
        self.names = names
        self.settings = redundant_settings(files.directory)
        #: The latest Supervisor of each name, and every supervisor process's, by pid.
        self.supervisors: dict[str, Supervisor] = {}
        self.by_sup_pid: dict[int, Supervisor] = {}
        self.epoch_owner: dict[int, int] = {}  # supervisor epoch -> the pid that took it
        self.takes: list[tuple[float, int, int]] = []  # (time, pid, epoch) of each 40701
        self.admitted: list[Admitted] = []
        self.launched: list[Launched] = []
        self.notes: list[str] = []
        self._senders: dict[tuple[str, int], int] = {}  # a connection's local end -> pid
        self.watchers.append(self._watch_supervisors)
        real_connect = self.net._connect

        async def connect(proc: Any, host: str, port: int) -> Any:
            stream = await real_connect(proc, host, port)
            server_end = next(reversed(self.net._streams))
            pid = next((p.pid for p in self.by_pid.values() if p.gate is proc.gate), None)
            if pid is not None:
                self._senders[tuple(server_end.peer)] = pid  # type: ignore[index]
            return stream

        self.net._connect = connect  # type: ignore[method-assign]
        #: Processes whose database writes land but whose answers are lost, until when.
        self.answers_lost: dict[str, float] = {}
        real_call = self.db.call

        async def call(process: str, gate: Any, plan: Any, write: bool) -> Any:
            result = await real_call(process, gate, plan, write)
            if write and self.answers_lost.get(process, -1.0) > trio.current_time():
                self.db.lost += 1
                raise UnavailableError("simulated database: the answer was lost (landed)")
            return result

        self.db.call = call  # type: ignore[method-assign]

    async def start_supervisor(self, name: str = "scs") -> SimProcess:
        """Start supervisor ``name`` (``scs``: every one of the world's)."""
        names = self.names if name == "scs" else (name,)
        procs = [await self._start_one(n) for n in names]
        return procs[-1]

    async def _start_one(self, name: str) -> SimProcess:
        rng = random.Random(self.rng.random())

        async def body(proc: SimProcess) -> int:
            launcher = OneCopyLauncher(self, proc)

            def this_process(port: int = 0, management_port: int = 0) -> Instance:
                return proc.instance(port, management_port)  # the simulated pid, for /proc

            with mock.patch.object(Instance, "this_process", staticmethod(this_process)):
                sup = Supervisor(self.settings, proc.log, rng, launcher=launcher, name=name)
            launcher.supervisor = sup
            self.supervisors[name] = self.by_sup_pid[proc.pid] = sup
            self.supervisor = sup
            async with trio.open_nursery() as nursery:
                await nursery.start(sup.run)
                await proc.until_stopped()
                nursery.cancel_scope.cancel()
            return 0

        return await self.spawn(name, body)

    def supervisor_procs(self) -> list[SimProcess]:
        """The supervisor processes that run now (not killed)."""
        return [p for p in self.by_pid.values() if p.pid in self.by_sup_pid and not p.gate.dead]

    def acting(self) -> list[str]:
        """The live supervisor processes acting now (``name#pid``)."""
        return [
            f"{p.name}#{p.pid}" for p in self.supervisor_procs() if self.by_sup_pid[p.pid].acting
        ]

    def active_name(self) -> str | None:
        """The name of the (one) supervisor acting now."""
        acting = [p.name for p in self.supervisor_procs() if self.by_sup_pid[p.pid].acting]
        return acting[0] if len(acting) == 1 else None

    def _watch_supervisors(
        self, now: float, process: str, event: LogEvent, fields: dict[str, Any]
    ) -> None:
        if event is scs_events.SUPERVISOR_ACTIVE:
            proc = self.processes.get(process)
            epoch = int(fields["epoch"])
            if proc is not None:
                self.takes.append((now, proc.pid, epoch))
                first = self.epoch_owner.setdefault(epoch, proc.pid)
                if first != proc.pid:
                    self.notes.append(
                        f"supervisor epoch {epoch} taken by pid {first} and by {process} "
                        f"(pid {proc.pid}) at {now:.3f} s"
                    )
        elif event is cs_events.SUPERVISOR_COMMAND_ADMITTED:
            proc = self.processes.get(process)
            host, _, port = str(fields["peer"]).rpartition(":")
            sender = self._senders.get((host, int(port))) if port.isdigit() else None
            self.admitted.append(
                Admitted(
                    now,
                    process,
                    proc.pid if proc is not None else 0,
                    int(fields["epoch"]),
                    str(fields["command"]),
                    sender,
                )
            )


@contextlib.contextmanager
def pause_at_command(world: RedundantWorld, method: str, seconds: float) -> Iterator[list[str]]:
    """The first supervisor to call ``ManagementClient.<method>`` is paused (SIGSTOP) right
    then, its epoch read and its bytes not yet sent, and resumed ``seconds`` later: a
    command on its way across a take-over. Yields the list the trapped process is put in."""
    real = getattr(ManagementClient, method)
    trapped: list[str] = []

    async def trap(self: ManagementClient, *args: Any, **kwargs: Any) -> Any:
        net = current_network()
        name = getattr(net, "name", "")
        proc = world.alive(name) if name in world.names else None
        if proc is not None and not trapped and world._nursery is not None:
            trapped.append(f"{name}#{proc.pid}")
            proc.pause()

            async def resume() -> None:
                await trio.sleep(seconds)
                proc.resume()

            world._nursery.start_soon(resume)
        return await real(self, *args, **kwargs)

    with mock.patch.object(ManagementClient, method, trap):
        yield trapped
