"""Simulated processes: a task group each, killed, paused, resumed; and the supervisor's launcher.

A :class:`SimProcess` runs one body (the real ``confserv`` command line, the
real supervisor, a client) in a cancel scope of its own, with its own network
view, its own database connections and its own :class:`~tests.sim.gate.Gate`:

- kill (SIGKILL): the gate dies first (every I/O it still tries fails at once,
  so no clean-up reaches anyone), then the scope is cancelled; its listeners
  and connections are closed as the kernel closes a dead process's sockets;
- pause and resume (SIGSTOP, SIGCONT): its I/O waits while paused;
- terminate (SIGTERM): the body's ``until_stopped`` returns and it stops as the
  real process does on that signal.

:class:`SimLauncher` is the supervisor's :class:`scs.launcher.Launcher` in the
simulation: it starts servers as simulated processes, watches them (its own
and adopted ones, by pid), kills and terminates them. A killed or paused
supervisor's launcher does nothing.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from addp.transport import use_network
from confserv.logs.catalog import LogEvent
from confserv.logs.eventlog import EventLog
from confserv.store.engines import use_store_opener
from confserv.store.instance import Instance
from scs.launcher import AdoptError, LaunchError, NotWatchedError

from .gate import Gate

if TYPE_CHECKING:
    from .world import World

#: Simulated pids start here, above any real pid (Linux's pid_max is at most 2**22).
SIM_PID_BASE = 10_000_000


class SimLog(EventLog):
    """A process's event log: every line goes to the world's trace, with the virtual time."""

    def __init__(self, world: World, process: str) -> None:
        super().__init__(process, io.StringIO(), verbose="all")
        self.world = world
        self.process = process

    def emit(self, event: LogEvent, **fields: Any) -> str:
        """Record the event (the world watches some of them); returns its text."""
        text = event.template.format(**fields)
        self.world.on_event(self.process, event, fields, text)
        return text


class SimProcess:
    """One simulated process (see module docstring)."""

    def __init__(
        self, world: World, name: str, pid: int, body: Callable[[SimProcess], Awaitable[int]]
    ) -> None:
        self.world = world
        self.name = name
        self.pid = pid
        self.start_ticks = pid  # unique per process: /proc's start time, as Instance reads it
        self.body = body
        self.gate = Gate()
        self.log = SimLog(world, name)
        self.err = io.StringIO()
        self.code: int | None = None
        self.how = ""
        self.killed = False
        self.ended = trio.Event()
        self._sigterm = trio.Event()
        self._scope = trio.CancelScope()

    def instance(self, port: int = 0, management_port: int = 0) -> Instance:
        """This process as a lease holder (on this host, so a dead one is known dead)."""
        return Instance(
            id=f"{self.name}-{self.pid}",
            host=socket.gethostname(),
            pid=self.pid,
            start=self.start_ticks,
            port=port,
            management_port=management_port,
        )

    @property
    def alive(self) -> bool:
        """Whether the process has not ended."""
        return not self.ended.is_set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The process's life: its body under its own network and database, then its end."""
        world = self.world
        with (
            use_network(world.net.view(self.name, self.gate)),
            use_store_opener(world.db.opener(self.name, self.gate)),
        ):
            task_status.started()
            try:
                with self._scope:
                    try:
                        self.code = await self.body(self)
                    except BaseException as exc:
                        if _only_cancelled(exc):
                            raise
                        self.code = 1  # a crash, unless it is the dying of a killed process
                        if not self.killed:
                            world.crashed(self, exc)
            finally:  # also when the whole world is stopped
                self.how = "killed by SIGKILL" if self.killed else f"exit code {self.code}"
                self.gate.kill()
                world.net.release(self.gate)
                world.ended(self)
                self.ended.set()

    async def until_stopped(self) -> str:
        """Returns once the process is asked to stop (SIGTERM): the real process's signal."""
        await self._sigterm.wait()
        return "SIGTERM"

    def kill(self) -> None:
        """SIGKILL."""
        if self.ended.is_set() or self.killed:
            return
        self.killed = True
        self.gate.kill()
        self.world.db.process_died()
        self._scope.cancel()

    def pause(self) -> None:
        """SIGSTOP."""
        self.gate.pause()

    def resume(self) -> None:
        """SIGCONT."""
        self.gate.resume()

    def terminate(self) -> None:
        """SIGCONT, then SIGTERM."""
        self.gate.resume()
        self._sigterm.set()


def _only_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's cancellation and nothing else (groups included)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


class SimLauncher:
    """The supervisor's launcher in the simulation (see module docstring)."""

    def __init__(self, world: World, owner: SimProcess) -> None:
        self.world = world
        self.owner = owner
        self._watched: dict[tuple[str, int], SimProcess] = {}

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """Start ``argv`` (a ``confserv`` command line) as a simulated process."""
        if not await self._running():
            raise LaunchError("the supervisor is dead")
        proc = await self.world.spawn_command(name, argv)
        self._watched[name, proc.pid] = proc
        return proc.pid

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """Until process ``pid`` ends; how it ended. Adopts a running one by its pid."""
        proc = self._watched.get((name, pid)) or self.world.by_pid.get(pid)
        if proc is None or not proc.alive:
            await trio.lowlevel.checkpoint()
            raise AdoptError("no such process on this host")
        self._watched[name, pid] = proc
        if watching is not None:
            watching()
        try:
            await proc.ended.wait()
            if not await self._running():  # a paused supervisor learns of it once resumed
                await trio.sleep_forever()  # a dead one never
        finally:
            if not proc.alive:
                self._watched.pop((name, pid), None)
        return proc.how

    def recorded(self, name: str) -> int | None:
        """No records in the simulation: a restarted supervisor asks the servers."""
        return None

    def kill(self, name: str, pid: int) -> None:
        """SIGKILL the very process watched as ``pid``."""
        if self.owner.gate.dead:
            return
        proc = self._watched.get((name, pid))
        if proc is None:
            raise NotWatchedError(f"pid {pid} is not a process watched for {name}")
        proc.kill()

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """SIGCONT + SIGTERM, then SIGKILL after ``timeout``."""
        if not await self._running():
            return  # a killed supervisor stops nothing
        proc = self._watched.get((name, pid)) or self.world.by_pid.get(pid)
        if proc is None or not proc.alive:
            return
        proc.terminate()
        with trio.move_on_after(timeout):
            await proc.ended.wait()
            return
        if not self.owner.gate.dead:
            proc.kill()
            await proc.ended.wait()

    async def _running(self) -> bool:
        """Wait while the supervisor is paused; False once it is dead."""
        try:
            await self.owner.gate.wait_running()
        except Exception:
            return False
        return True
