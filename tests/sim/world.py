"""One simulated world: its network, its database, its processes, and what it saw.

:class:`World` starts simulated processes (:mod:`tests.sim.process`) running
the real code, keeps the trace of every event they log (with the virtual
time) and the crashes (an exception escaping a process, an error logged with
a traceback). :func:`simulated` sets up what the simulation needs of the
interpreter for the length of one run, and :func:`run_world` runs a scenario
under trio's ``MockClock(autojump_threshold=0)``:

- worker threads run inline (``trio.to_thread.run_sync``: a password check):
  a thread and a virtual clock do not mix, and replays must be exact;
- a simulated pid is alive, as ``/proc`` would say to
  :meth:`confserv.store.instance.Instance.known_dead`, while its process runs;
- trio's scheduling is made deterministic as it is under hypothesis (each
  batch of runnable tasks in spawn order, then shuffled by a generator
  seeded from the schedule), so a seed replays the same run in any process;
- the run loop asks the kernel for I/O events only every 64th turn when it
  would not wait for them (nothing in a simulation does real I/O but trio's
  own wake-ups: one syscall saved per turn, a fifth of the run's time).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio
import trio.testing

import confserv.store.instance as instance_module
from confserv.logs.catalog import LogEvent
from confserv.server.app import ProcessSeams
from confserv.server.cli import run_command
from scs.supervisor import Supervisor

from .net import SimNetwork
from .process import SIM_PID_BASE, SimLauncher, SimProcess
from .store import SimDatabase
from .system import Files

#: (time, process, event id, text) of every line logged.
TraceLine = tuple[float, str, int, str]


class World:
    """See module docstring."""

    def __init__(self, seed: int, files: Files, template: Any) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.files = files
        self.net = SimNetwork()
        self.db = SimDatabase(template)
        self.processes: dict[str, SimProcess] = {}  # the latest of each name
        self.by_pid: dict[int, SimProcess] = {}  # the running ones
        self._pids = itertools.count(SIM_PID_BASE + 1)
        self.trace: list[TraceLine] = []
        self.crashes: list[str] = []
        self.watchers: list[Callable[[float, str, LogEvent, dict[str, Any]], None]] = []
        self.supervisor: Supervisor | None = None
        self._nursery: trio.Nursery | None = None
        self.db.pid_alive = self.pid_alive

    def pid_alive(self, pid: int) -> bool:
        """Whether simulated process ``pid`` runs (a killed one is dead at once)."""
        proc = self.by_pid.get(pid)
        return proc is not None and not proc.gate.dead

    # -- processes ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """The world's processes live inside this block; all are stopped at its end."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                yield self
            finally:
                for proc in list(self.by_pid.values()):
                    proc.kill()  # the end of the run: nothing cleans up, nothing is judged
                nursery.cancel_scope.cancel()

    async def spawn(self, name: str, body: Callable[[SimProcess], Awaitable[int]]) -> SimProcess:
        """Start a simulated process running ``body``."""
        assert self._nursery is not None
        proc = SimProcess(self, name, next(self._pids), body)
        self.processes[name] = proc
        self.by_pid[proc.pid] = proc
        await self._nursery.start(proc.run)
        return proc

    async def spawn_command(self, name: str, argv: list[str]) -> SimProcess:
        """Start the ``confserv`` command line ``argv`` as process ``name``."""

        async def body(proc: SimProcess) -> int:
            seams = ProcessSeams(instance=proc.instance, pid=proc.pid, freeze_gc=False)
            return await run_command(
                argv, proc.until_stopped, log=lambda _s: proc.log, seams=seams, err=proc.err
            )

        return await self.spawn(name, body)

    async def start_server(self, section: str) -> SimProcess:
        """Start server ``section`` by hand (as the supervisor would)."""
        return await self.spawn_command(section, self.files.argv(section))

    async def start_supervisor(self, name: str = "scs") -> SimProcess:
        """Start the real supervisor on the installation's scs.conf."""

        async def body(proc: SimProcess) -> int:
            launcher = SimLauncher(self, proc)
            sup = Supervisor(
                self.files.scs, proc.log, random.Random(self.rng.random()), launcher=launcher
            )
            self.supervisor = sup
            async with trio.open_nursery() as nursery:
                await nursery.start(sup.run)
                await proc.until_stopped()
                nursery.cancel_scope.cancel()
            return 0

        return await self.spawn(name, body)

    def alive(self, name: str) -> SimProcess | None:
        """The running process ``name``, if any."""
        proc = self.processes.get(name)
        return proc if proc is not None and proc.alive else None

    # -- what the processes tell ----------------------------------------------------

    def on_event(self, process: str, event: LogEvent, fields: dict[str, Any], text: str) -> None:
        """A process logged ``event``."""
        now = trio.current_time()
        self.trace.append((now, process, event.id, text))
        for watcher in self.watchers:
            watcher(now, process, event, fields)

    def crashed(self, proc: SimProcess, exc: BaseException) -> None:
        """An exception escaped a running process: a bug."""
        text = "".join(traceback.format_exception(exc))
        self.crashes.append(f"process {proc.name} (pid {proc.pid}) crashed:\n{text}")

    def ended(self, proc: SimProcess) -> None:
        """Process ``proc`` ended."""
        self.by_pid.pop(proc.pid, None)
        self.trace.append((trio.current_time(), proc.name, 0, f"process ended: {proc.how}"))

    def dump(self, limit: int = 400) -> str:
        """The last lines of the trace, for a failure report."""
        return "\n".join(f"{t:9.3f} {p:>9} {i:05d} {x}" for t, p, i, x in self.trace[-limit:])


# -- the interpreter, for one run ---------------------------------------------------

_current: World | None = None


async def _inline_thread(fn: Callable[..., Any], *args: Any, **_options: Any) -> Any:
    """``trio.to_thread.run_sync`` in the simulation: the call, in this thread."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


class _Crashes(logging.Handler):
    """Errors logged with a traceback (a handler that failed, a delivery that raised)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and _current is not None:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
            _current.crashes.append(f"logged by {record.name}: {text}")


@contextlib.contextmanager
def simulated(world: World) -> Iterator[None]:
    """What one run needs of the interpreter (see module docstring); undone at the end."""
    global _current
    real_start_time = instance_module._start_time
    real_to_thread = trio.to_thread.run_sync

    def start_time(pid: int) -> int | None:
        if pid > SIM_PID_BASE:
            proc = world.by_pid.get(pid)
            return proc.start_ticks if proc is not None and world.pid_alive(pid) else None
        return real_start_time(pid)

    handler = _Crashes()
    saved = []
    for name in ("", "addp", "confserv", "scs"):
        log = logging.getLogger(name)
        saved.append((log, log.handlers[:], log.propagate, log.level))
        log.handlers[:] = [handler]
        log.propagate = False
        log.setLevel(logging.ERROR)
    instance_module._start_time = start_time  # type: ignore[assignment]
    trio.to_thread.run_sync = _inline_thread  # type: ignore[assignment]
    epoll = trio._core._io_epoll.EpollIOManager
    real_get_events = epoll.get_events

    turns = itertools.count()

    def get_events(self: Any, timeout: float) -> Any:
        # Every 64th turn asks for real: trio's own wake-ups (run_sync_soon, the
        # finalizing of async generators) come through its wake-up socket.
        if timeout <= 0 and next(turns) % 64:
            return []
        return real_get_events(self, timeout)

    epoll.get_events = get_events  # type: ignore[method-assign]
    run_module = trio._core._run
    deterministic = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True  # as under hypothesis: each batch in
    run_module._r.seed(world.seed)  # spawn order, then shuffled by the seeded generator
    _current = world
    try:
        yield
    finally:
        _current = None
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = deterministic
        epoll.get_events = real_get_events  # type: ignore[method-assign]
        trio.to_thread.run_sync = real_to_thread  # type: ignore[assignment]
        instance_module._start_time = real_start_time  # type: ignore[assignment]
        for log, handlers, propagate, level in saved:
            log.handlers[:] = handlers
            log.propagate = propagate
            log.setLevel(level)


#: Task steps without the virtual clock moving that make a livelock (a loop that never
#: waits: in a real process, a core spinning at 100%).
SPIN_LIMIT = 100_000


class _SpinWatch(trio.abc.Instrument):
    """Ends the run when the tasks spin without time passing (see :data:`SPIN_LIMIT`).

    The clock is looked at every :data:`_WINDOW` steps only (a look per step would
    cost a twentieth of the run)."""

    def __init__(self, world: World, scope: trio.CancelScope) -> None:
        self.world = world
        self.scope = scope
        self.at = -1.0
        self.steps = 0
        self.still = 0
        self.names: dict[str, int] = {}

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if self.still:
            self.names[task.name] = self.names.get(task.name, 0) + 1
        if self.steps < _WINDOW:
            return
        self.steps = 0
        now = trio.current_time()
        if now != self.at:
            self.at, self.still, self.names = now, 0, {}
            return
        self.still += 1
        if self.still * _WINDOW >= SPIN_LIMIT and not self.scope.cancel_called:
            busiest = sorted(self.names.items(), key=lambda kv: -kv[1])[:3]
            self.world.crashes.append(
                f"livelock at {now:.3f} s: {SPIN_LIMIT} task steps without time passing "
                f"(busiest: {', '.join(f'{n} x{c}' for n, c in busiest)})"
            )
            self.scope.cancel()


#: Task steps between two looks at the clock.
_WINDOW = 20_000


def run_world(world: World, scenario: Callable[[World], Awaitable[Any]]) -> Any:
    """Run ``scenario(world)`` inside the world, on a virtual clock, from a fresh trio run.
    A livelock ends the run early, as a crash of the world."""

    async def main() -> Any:
        scope = trio.CancelScope()
        watch = _SpinWatch(world, scope)
        trio.lowlevel.add_instrument(watch)
        try:
            with scope:
                async with world.running():
                    return await scenario(world)
        finally:
            trio.lowlevel.remove_instrument(watch)

    with simulated(world):
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
