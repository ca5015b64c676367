"""One seeded schedule in the simulation: faults drawn from the seed, injected, healed, judged.

A schedule starts the real supervisor on the installation (it starts the
pair and the proxy), waits until the pair serves, starts the workload
(:mod:`tests.sim.workload`), injects one or two faults drawn from the seed
alone (:func:`plan`), then heals everything (network, database, paused
processes, a dead supervisor) and gives the system :data:`LIVENESS_BOUND`
seconds: some write must be acknowledged after the heal. Then the primary is
read whole, and the record is judged by :mod:`tests.chaos.checker` (clients'
view) and :mod:`tests.chaos.oracle` (the database's own History Log and
lease), plus what only a simulation can see (:mod:`tests.sim.verdict`).

Faults (the labels count them in the summary; ``short`` is under the fault's
bound, which must cause no failover):

- ``kill`` of the primary, the backup, the proxy or the supervisor (restarted
  after a while); ``kill-mid-promotion``: the primary, then the backup as soon
  as the supervisor decides to promote it;
- ``pause`` (SIGSTOP) of any of them, short or long; ``pause-mid-commit``: the
  primary stopped with a commit on its way to the database;
- ``partition`` of a link (cut, blackhole, half-open, delay), short or long;
- ``db-stall``, ``db-lost`` (commits land, answers are lost), ``db-cut`` of one
  server (refused or hanging), short or long.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from confserv.logs import events as cs_events
from confserv.logs.catalog import LogEvent
from scs import events as scs_events

from ..chaos.checker import Fault, Record
from ..chaos.oracle import Take
from .net import MODES
from .system import DB_BOUND, DETECTION_BOUND, LEASE_TTL, PAIR, PROXY
from .workload import Workload
from .world import World

#: After the heal, a write must be acknowledged within this (virtual seconds).
LIVENESS_BOUND = 8.0
#: The least time the system runs after the heal: a failover a short fault caused comes
#: within its bound of the fault's end, which is 0.5 s before the heal; and a margin.
SETTLE = DETECTION_BOUND - 0.5 + 0.3
#: The pair must serve this soon after the supervisor starts.
READY_BOUND = 10.0
#: Links a partition can hit: (process, process); primary/backup resolved when injected.
LINKS = (
    ("scs", "primary"),
    ("scs", "backup"),
    ("scs", PROXY),
    ("backup", "primary"),
    (PROXY, "primary"),
    ("w", "primary"),
    ("p", PROXY),
    ("r", PROXY),
)
KILLABLE = ("primary", "primary", "backup", PROXY, "scs")
#: The kinds of fault, as often as they are drawn.
KINDS = (
    *("kill", "kill", "pause", "pause", "partition", "partition", "partition"),
    *("kill-mid-promotion", "pause-mid-commit", "db-stall", "db-lost", "db-cut"),
)


@dataclass
class Planned:
    """One fault of a schedule, drawn from the seed before the run starts."""

    at: float
    kind: str
    what: str
    duration: float = 0.0
    mode: str = ""
    delay: float = 0.0
    pause_after: float = 0.0

    @property
    def bound(self) -> float | None:
        """Below this duration the fault must cause no failover (None: no such rule)."""
        if self.kind in ("db-stall", "db-lost", "db-cut"):
            return DB_BOUND
        if self.kind in ("pause", "partition"):
            return DETECTION_BOUND
        return None

    @property
    def label(self) -> str:
        """What the summary counts it as (``partition scs-primary blackhole long``)."""
        parts = [self.kind, self.what, self.mode]
        if self.bound is not None:
            parts.append("short" if self.duration < self.bound else "long")
        return " ".join(p for p in parts if p)


def _duration(rng: random.Random, short: tuple[float, float]) -> float:
    return rng.uniform(2.5, 4.0) if rng.random() < 0.5 else rng.uniform(*short)


def plan(rng: random.Random, most: int = 2) -> list[Planned]:
    """One or two faults, from ``rng`` only (so a seed replays them)."""
    faults = []
    for _ in range(rng.randint(1, most)):
        at = rng.uniform(0.3, 1.5)
        kind = rng.choice(KINDS)
        if kind == "kill":
            what = rng.choice(KILLABLE)
            faults.append(Planned(at, kind, what, rng.uniform(0.2, 1.0) if what == "scs" else 0))
        elif kind == "kill-mid-promotion":
            faults.append(Planned(at, kind, "primary+backup", pause_after=rng.uniform(0, 0.03)))
        elif kind == "pause":
            faults.append(Planned(at, kind, rng.choice(KILLABLE), _duration(rng, (0.1, 0.8))))
        elif kind == "pause-mid-commit":
            # Before sending it (resumed after a while, or the moment another server takes
            # the lease: the worst moment), or holding the database's write lock.
            mode = rng.choice(("before", "until-deposed", "inside"))
            faults.append(Planned(at, kind, "primary", rng.uniform(2.5, 4.0), mode=mode))
        elif kind == "partition":
            a, b = rng.choice(LINKS)
            faults.append(
                Planned(
                    at,
                    kind,
                    f"{a}-{b}",
                    _duration(rng, (0.2, 1.5)),
                    mode=rng.choice(MODES),
                    delay=rng.uniform(0.05, 0.3),
                )
            )
        elif kind == "db-cut":
            mode = rng.choice(("refuse", "hang"))
            what = rng.choice(("primary", "primary", "backup"))
            faults.append(Planned(at, kind, what, _duration(rng, (0.1, 1.0)), mode=mode))
        elif kind == "db-stall":
            faults.append(Planned(at, kind, "database", _duration(rng, (0.1, 1.0))))
        else:
            faults.append(Planned(at, kind, "database", rng.uniform(0.1, 1.0)))
    return sorted(faults, key=lambda f: f.at)


class Schedule:
    """One schedule (see module docstring): run it with :func:`tests.sim.run.run_schedule`."""

    def __init__(self, world: World, planned: list[Planned] | None = None) -> None:
        self.world = world
        self.planned = plan(random.Random(world.seed)) if planned is None else planned
        self.record = Record(detection_bound=DETECTION_BOUND)
        self.record.settle = 2 * DETECTION_BOUND + LEASE_TTL + 1.5
        self.workload = Workload(self.record, f"s{world.seed}-")
        self.roles: dict[str, str] = {}
        self.takes: list[Take] = []
        self.notes: list[str] = []  # violations only the simulation sees
        self.failsafe = 0
        self.healed_at = 0.0
        self.final: list[str] | str = []
        self._promoting = trio.Event()
        self._taken = trio.Event()
        world.watchers.append(self._watch)

    # -- what the processes say -----------------------------------------------------

    def _watch(self, now: float, process: str, event: LogEvent, fields: dict[str, Any]) -> None:
        if event is cs_events.ROLE_CHANGED:
            self.roles[process] = str(fields["new"])
        elif event is cs_events.LEASE_TAKEN:
            forced = bool(fields.get("how"))
            self.takes.append(Take(int(fields["epoch"]), process, forced=forced))
            self._taken.set()
            self.record.promotions.append((now, int(fields["epoch"]), process))
        elif event is cs_events.WRITES_STOPPED and "failsafe" in str(fields.get("reason")):
            self.failsafe += 1
        elif event in (scs_events.DECIDED_FORCE, scs_events.DECIDED_WAIT):
            self._promoting.set()

    def role_of(self, role: str) -> str | None:
        """The running pair member that last said it is ``role`` (primary, backup)."""
        for name in PAIR:
            proc = self.world.alive(name)
            if proc is not None and not proc.killed and self.roles.get(name) == role:
                return name
        return None

    def _resolve(self, what: str) -> str | None:
        if what == "primary":
            return self.role_of("primary")
        if what == "backup":
            primary = self.role_of("primary")
            return None if primary is None else PAIR[1] if primary == PAIR[0] else PAIR[0]
        return what

    # -- the run --------------------------------------------------------------------

    async def run(self) -> None:
        """Start, load, inject, heal, read (see module docstring)."""
        world = self.world
        await world.start_supervisor()
        started = trio.current_time()
        with trio.move_on_after(READY_BOUND):
            while not self._ready():
                await trio.sleep(0.05)
        if not self._ready():
            self.notes.append(f"the pair did not serve within {READY_BOUND:g} s of the start")
            return
        ready = trio.current_time()
        workload = [
            await world.spawn("w", self.workload.writer),
            await world.spawn("p", self.workload.through_proxy),
            await world.spawn("r", self.workload.through_proxy),
        ]
        async with trio.open_nursery() as nursery:
            for p in self.planned:
                nursery.start_soon(self._inject_at, ready + p.at, p)
        await trio.sleep(0.5)
        self._heal()
        self.healed_at = self.record.healed_at = trio.current_time()
        # Until a write is acknowledged after the heal (at most LIVENESS_BOUND), and at
        # least SETTLE: a failover a short fault caused would come within its bound.
        with trio.move_on_after(LIVENESS_BOUND):
            while not self._written_since(self.healed_at):
                await trio.sleep(0.05)
        await trio.sleep_until(max(trio.current_time(), self.healed_at + SETTLE))
        self.workload.stop.set()
        with trio.move_on_after(35.0):
            for proc in workload:
                await proc.ended.wait()
        self.final = await self._final_read()
        self.record.committed = set(self.final) if isinstance(self.final, list) else set()
        if isinstance(self.final, str):
            self.record.final_read_error = self.final
        _ = started

    def _written_since(self, when: float) -> bool:
        return self.workload.last_write_start >= when

    def _ready(self) -> bool:
        return (
            self.role_of("primary") is not None
            and self.role_of("backup") is not None
            and any(
                i == cs_events.CONNECTED.id and p == PROXY and "primary" in x
                for _, p, i, x in self.world.trace[-200:]
            )
        )

    async def _final_read(self) -> list[str] | str:
        from .workload import final_read

        result: list[list[str] | str] = []

        async def body(_proc: Any) -> int:
            result.append(await final_read())
            return 0

        proc = await self.world.spawn("final", body)
        await proc.ended.wait()
        return result[0] if result else "the final read did not end"

    def _heal(self) -> None:
        world = self.world
        world.net.heal_all()
        world.db.heal()
        for proc in list(world.by_pid.values()):
            proc.resume()

    # -- faults ---------------------------------------------------------------------

    async def _inject_at(self, when: float, p: Planned) -> None:
        await trio.sleep_until(when)
        await self._inject(p)

    async def _inject(self, p: Planned) -> None:
        world = self.world
        fault = Fault(p.kind, p.label, trio.current_time(), p.duration, p.bound)
        if p.kind == "kill" and p.what == "scs":
            scs = world.alive("scs")
            if scs is None:
                return
            self.record.faults.append(fault)
            scs.kill()
            await scs.ended.wait()
            await trio.sleep(p.duration)
            await world.start_supervisor()
        elif p.kind in ("kill", "pause", "pause-mid-commit"):
            name = self._resolve(p.what)
            proc = world.alive(name) if name is not None else None
            if proc is None or proc.killed or proc.gate.paused:
                return  # the target is down at this moment: nothing injected
            self.record.faults.append(fault)
            if p.kind == "kill":
                proc.kill()
                return
            if p.kind == "pause-mid-commit":
                world.db.pause_at_next_commit(proc.name, proc.pause, inside=p.mode == "inside")
            else:
                proc.pause()
            if p.mode == "until-deposed":
                before = len(self.takes)
                with trio.move_on_after(p.duration):
                    while not any(t.holder != proc.name for t in self.takes[before:]):
                        self._taken = trio.Event()
                        await self._taken.wait()
            else:
                await trio.sleep(p.duration)
            proc.resume()
        elif p.kind == "kill-mid-promotion":
            primary, backup = self._resolve("primary"), self._resolve("backup")
            first = world.alive(primary) if primary else None
            second = world.alive(backup) if backup else None
            if first is None or second is None:
                return
            self.record.faults.append(fault)
            self._promoting = trio.Event()
            first.kill()
            with trio.move_on_after(5):
                await self._promoting.wait()
                await trio.sleep(p.pause_after)
                second.kill()
        elif p.kind == "partition":
            a, _, b = p.what.partition("-")
            a, b = self._resolve(a), self._resolve(b)
            if a is None or b is None:
                return
            self.record.faults.append(fault)
            world.net.partition(a, b, p.mode, delay=p.delay)
            await trio.sleep(p.duration)
            world.net.heal(a, b)
        elif p.kind == "db-cut":
            name = self._resolve(p.what)
            if name is None:
                return
            self.record.faults.append(fault)
            world.db.cut_off(name, p.duration, p.mode)
            await trio.sleep(p.duration)
        elif p.kind == "db-stall":
            self.record.faults.append(fault)
            world.db.stall(p.duration)
            await trio.sleep(p.duration)
        else:
            self.record.faults.append(fault)
            world.db.lose_answers(p.duration)
            await trio.sleep(p.duration)
