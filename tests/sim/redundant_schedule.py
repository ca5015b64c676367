"""Seeded schedules of faults on redundant supervisors and their pair, and their judge.

:class:`RedundantSchedule` is a :class:`~tests.sim.schedule.Schedule` on a
:class:`~tests.sim.redundant.RedundantWorld` whose faults (:func:`plan_redundant`,
from the seed alone) also hit the supervisors: kill (restarted after a while,
or only at the heal), pause (SIGSTOP), cut off from the database (refused or
hanging), its writes' answers lost (they land), partitioned from a server;
aimed at the active one, the standby, or any; and the database slowed
(``db-latency``). It samples the world every
:data:`SAMPLE` seconds and judges, beside the schedule's own invariants
(:func:`tests.sim.verdict.judge`), those of shared/docs/design.md, "The
supervisor is fenced too" (:meth:`RedundantSchedule.judge_supervisors`):

1. every server admits supervisor commands (event 20125) in non-decreasing
   supervisor epoch, and each epoch's commands come from one supervisor
   process: the one that logged 40701 for that epoch;
2. at most one supervisor acts (``Supervisor.acting``) at any sampled instant;
3. no server section has two live processes at once (the host's launcher
   refuses actions of a supervisor not acting as they are carried out, as an
   agent does, and counts them: :meth:`RedundantSchedule.refused_at_host`);
4. a lost active (killed, or paused or cut off for longer than the lease) is
   replaced within :data:`REPLACED_BOUND` (its answers lost for long, within
   :data:`ANSWERS_LOST_BOUND`); one that survives its fault (a
   short pause or cut, a partition) is not replaced (one-fault schedules);
5. liveness: from the heal, within :data:`TAKEOVER_BOUND`, exactly one
   supervisor acts and the pair is healthy (a primary, a backup, the proxy).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import trio

from ..chaos.checker import Fault
from .net import MODES
from .process import SimProcess
from .redundant import SUP_RETRY, SUP_TTL, Admitted, RedundantWorld, pause_at_command
from .schedule import Planned, Schedule, plan
from .system import DETECTION_BOUND, PROXY, SERVERS

#: The sampler's period (virtual seconds).
SAMPLE = 0.01
#: From the heal: one supervisor acts and the pair is healthy by then. The election's
#: bound (ttl + retry + two round trips, scs/election.py), then the adoption and the
#: pair's own recovery (a restarted server, ADDP timeouts of 1 s).
TAKEOVER_BOUND = SUP_TTL + SUP_RETRY + 4.0
#: A pause of the active supervisor, or its database cut off, for less than this costs it
#: nothing: on resuming it renews before ``good_until - margin`` (ttl - renew - margin,
#: 1.25 s, less a quick retry's 0.125 s).
SHORT = 1.1
#: A lost active is replaced within this of the fault (scs/election.py's bound, no latency:
#: ttl + retry), plus the scheduling slack of one sampling period.
REPLACED_BOUND = SUP_TTL + SUP_RETRY + 0.05
#: The active's database answers lost (its requests land): some supervisor acts again
#: within this, one that gets answers (its lease renewed by its unanswered renewals until
#: it stops acting, then expired; ttl + retry later a standby's take). The seeded draws
#: stay under it (at most 3 s); tests/sim/test_redundant.py holds it for 6 s.
ANSWERS_LOST_BOUND = 2 * SUP_TTL + SUP_RETRY + 0.1
#: A supervisor fault alone must cause no failover of the pair (the Fault's bound).
NO_FAILOVER = 1e6
#: The faults of a supervisor, as often as they are drawn.
SUP_KINDS = (
    *("sup-kill", "sup-kill", "sup-crash", "sup-pause", "sup-pause", "sup-db-cut"),
    *("sup-partition", "sup-db-lost", "db-latency"),
)
#: Which supervisor a fault aims at (``any``: one of the world's, drawn): resolved when
#: it is injected.
SUP_TARGETS = ("active", "active", "standby", "any")
#: The database's one-way latency in a ``db-latency`` fault: at most this (well within
#: the lease's margin, 0.25 s, as scs/election.py's ordering bound assumes).
MAX_LATENCY = 0.1


@dataclass(frozen=True)
class SupFault:
    """A fault injected into a supervisor process."""

    at: float
    kind: str
    duration: float
    pid: int
    acting: bool  # whether it was the acting one when hit


def plan_redundant(rng: random.Random, most: int = 2) -> list[Planned]:
    """One to ``most`` faults, each a supervisor's (half of them) or one of the pair's."""
    faults: list[Planned] = []
    for _ in range(rng.randint(1, most)):
        if rng.random() < 0.5:
            faults += [p for p in plan(rng, 1) if "scs" not in p.what]
            continue
        at = rng.uniform(0.3, 1.5)
        kind = rng.choice(SUP_KINDS)
        what = rng.choice(SUP_TARGETS)
        long = rng.random() < 0.5
        if kind == "sup-kill":
            faults.append(Planned(at, kind, what, rng.uniform(0.2, 3.0)))
        elif kind == "sup-db-lost":  # its writes land, their answers are lost
            faults.append(Planned(at, kind, what, rng.uniform(0.1, 3.0)))
        elif kind == "sup-crash":  # killed, restarted only at the heal
            faults.append(Planned(at, kind, what))
        elif kind == "db-latency":
            duration = rng.uniform(1.0, 4.0)
            faults.append(Planned(at, kind, "database", duration, delay=rng.random() * MAX_LATENCY))
        elif kind == "sup-pause":
            duration = rng.uniform(2.5, 5.0) if long else rng.uniform(0.1, SHORT)
            faults.append(Planned(at, kind, what, duration))
        elif kind == "sup-db-cut":
            duration = rng.uniform(2.5, 5.0) if long else rng.uniform(0.1, SHORT)
            faults.append(Planned(at, kind, what, duration, mode=rng.choice(("refuse", "hang"))))
        else:
            server = rng.choice(("primary", "backup", PROXY))
            duration = rng.uniform(2.5, 4.0) if long else rng.uniform(0.2, 1.5)
            faults.append(
                Planned(
                    at,
                    kind,
                    f"{what}>{server}",
                    duration,
                    mode=rng.choice(MODES),
                    delay=rng.uniform(0.05, 0.3),
                )
            )
    return sorted(faults, key=lambda f: f.at)


class RedundantSchedule(Schedule):
    """A schedule of faults on the pair and on its supervisors (module docstring)."""

    world: RedundantWorld

    def __init__(
        self,
        world: RedundantWorld,
        planned: list[Planned] | None = None,
        trap: tuple[str, float] | None = None,
        most: int = 2,
    ) -> None:
        drawn = planned is None
        chosen = plan_redundant(random.Random(world.seed), most) if drawn else planned
        super().__init__(world, chosen)
        #: ``(ManagementClient method, seconds)``: :func:`pause_at_command` for the run.
        self.trap = trap
        self.trapped: list[str] = []
        self.overlaps: list[str] = []
        self.twice: list[str] = []
        self.healthy_at: float | None = None
        self._liveness_done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._sampled = 0
        self.sup_faults: list[SupFault] = []
        self.pick = random.Random(world.seed + 1)  # ``any``'s supervisor, drawn as injected
        #: Seconds from the loss of the active to its successor's 40701 (one-fault schedules).
        self.replaced_in: float | None = None

    async def run(self) -> None:
        """The schedule, with the sampler beside it and the liveness check after the heal."""
        with contextlib.ExitStack() as stack:
            if self.trap is not None:
                self.trapped = stack.enter_context(pause_at_command(self.world, *self.trap))
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._sampler)
                await super().run()
                if self.healed_at:
                    await self._liveness_done.wait()
                nursery.cancel_scope.cancel()

    def _heal(self) -> None:
        super()._heal()
        self.world.db.latency = 0.0
        self.world.answers_lost.clear()
        if self._nursery is not None:
            for name in self.world.names:
                proc = self.world.alive(name)
                if proc is None or proc.killed:  # a crashed supervisor, restarted now
                    self._nursery.start_soon(self.world.start_supervisor, name)
            self._nursery.start_soon(self._liveness, trio.current_time())

    async def _liveness(self, healed: float) -> None:
        with trio.move_on_at(healed + TAKEOVER_BOUND):
            while not self._healthy():
                await trio.sleep(0.05)
            self.healthy_at = trio.current_time() - healed
        if self.healthy_at is None:
            acting = self.world.acting()
            self.notes.append(
                f"{TAKEOVER_BOUND:g} s after the heal: supervisors acting {acting}, "
                f"primary {self.role_of('primary')}, backup {self.role_of('backup')}, "
                f"proxy {'up' if self.world.alive(PROXY) else 'down'}"
            )
        self._liveness_done.set()

    def _healthy(self) -> bool:
        world = self.world
        return (
            len(world.acting()) == 1
            and len(world.supervisor_procs()) == len(world.names)
            and self.role_of("primary") is not None
            and self.role_of("backup") is not None
            and world.alive(PROXY) is not None
        )

    async def _sampler(self) -> None:
        while True:
            self._sample()
            await trio.sleep(SAMPLE)

    def _sample(self) -> None:
        now = trio.current_time()
        self._sampled += 1
        acting = self.world.acting()
        if len(acting) > 1 and len(self.overlaps) < 5:
            self.overlaps.append(f"{now:.3f} s: {acting} act at once")
        live: dict[str, list[int]] = {}
        for proc in self.world.by_pid.values():
            if proc.name in SERVERS and not proc.gate.dead:
                live.setdefault(proc.name, []).append(proc.pid)
        for name, pids in live.items():
            if len(pids) > 1 and len(self.twice) < 5:
                self.twice.append(f"{now:.3f} s: {name} runs twice (pids {pids})")

    # -- faults ---------------------------------------------------------------------

    def _sup(self, what: str) -> SimProcess | None:
        world = self.world
        if what == "active":
            name = world.active_name()
        elif what == "standby":
            active = world.active_name()
            name = next((n for n in world.names if n != active), None) if active else None
        else:
            name = what
        proc = world.alive(name) if name is not None else None
        return proc if proc is not None and not proc.killed else None

    async def _inject(self, p: Planned) -> None:
        if not p.kind.startswith("sup-") and p.kind not in ("db-latency", "hold"):
            await super()._inject(p)
            return
        world = self.world
        if p.kind == "hold":  # no fault: the heal waits for it (a trap's pause lasts)
            await trio.sleep(p.duration)
            return
        if p.kind == "db-latency":
            self.record.faults.append(
                Fault(p.kind, f"{p.label} {p.delay:.3f} s", trio.current_time(), p.duration, None)
            )
            world.db.latency = p.delay
            await trio.sleep(p.duration)
            world.db.latency = 0.0
            return
        target, _, server = p.what.partition(">")
        if target == "any":
            target = self.pick.choice(world.names)
        proc = self._sup(target)
        if proc is None or (p.kind == "sup-pause" and proc.gate.paused):
            return
        now = trio.current_time()
        bound = DETECTION_BOUND if p.kind == "sup-partition" else NO_FAILOVER
        self.record.faults.append(Fault(p.kind, f"{p.label} ({proc.name})", now, p.duration, bound))
        acting = world.by_sup_pid[proc.pid].acting
        self.sup_faults.append(SupFault(now, p.kind, p.duration, proc.pid, acting))
        if p.kind == "sup-kill":
            proc.kill()
            await proc.ended.wait()
            await trio.sleep(p.duration)
            await world.start_supervisor(proc.name)
        elif p.kind == "sup-crash":
            proc.kill()
        elif p.kind == "sup-pause":
            proc.pause()
            await trio.sleep(p.duration)
            proc.resume()
        elif p.kind == "sup-db-lost":
            world.answers_lost[proc.name] = trio.current_time() + p.duration
            await trio.sleep(p.duration)
        elif p.kind == "sup-db-cut":
            world.db.cut_off(proc.name, p.duration, p.mode)
            await trio.sleep(p.duration)
        else:
            other = self._resolve(server)
            if other is None:
                return
            world.net.partition(proc.name, other, p.mode, delay=p.delay)
            await trio.sleep(p.duration)
            world.net.heal(proc.name, other)

    # -- the supervisors' invariants ------------------------------------------------

    def judge_supervisors(self) -> list[str]:
        """Invariants 1-3 of the module docstring (4 is noted by the liveness check)."""
        world = self.world
        found = list(world.notes) + self.overlaps + self.twice
        newest: dict[str, Admitted] = {}
        for a in world.admitted:
            last = newest.get(a.server)
            if last is not None and a.epoch < last.epoch:
                found.append(
                    f"{a.server} admitted '{a.command}' at supervisor epoch {a.epoch} "
                    f"({a.at:.3f} s) after '{last.command}' at epoch {last.epoch} "
                    f"({last.at:.3f} s)"
                )
            newest[a.server] = a if last is None or a.epoch >= last.epoch else last
            owner = world.epoch_owner.get(a.epoch)
            if a.epoch and a.sender is None:
                found.append(f"{a.server} admitted '{a.command}' from an unknown sender")
            elif a.epoch and owner != a.sender:
                found.append(
                    f"{a.server} admitted '{a.command}' at supervisor epoch {a.epoch} "
                    f"({a.at:.3f} s) from pid {a.sender}; the epoch was taken by pid {owner}"
                )
            if a.epoch == 0:
                found.append(f"{a.server} admitted '{a.command}' at supervisor epoch 0")
        return found + self._judge_takeover()

    def refused_at_host(self) -> list[str]:
        """The launcher actions refused because their supervisor no longer acted when they
        were carried out (a start decided while acting, held up by a SIGSTOP): the host
        refuses them, as HostLauncher's ``before_spawn`` and an agent's epoch check do."""
        return [
            f"{w.at:.3f} s: '{w.action}' of {w.server} by pid {w.supervisor}, not acting"
            for w in self.world.launched
            if not w.acting
        ]

    def _judge_takeover(self) -> list[str]:
        """One supervisor fault alone: the active lost is replaced within REPLACED_BOUND;
        one it survives (a short pause or cut, a partition) causes no take-over."""
        if len(self.record.faults) != 1 or len(self.sup_faults) != 1:
            return []
        f = self.sup_faults[0]
        if not f.acting:
            return []
        later = [(t, pid, e) for t, pid, e in self.world.takes if t >= f.at]
        lost = f.kind in ("sup-kill", "sup-crash") or (
            f.kind in ("sup-pause", "sup-db-cut") and f.duration >= SUP_TTL
        )
        survived = f.kind == "sup-partition" or (
            f.kind in ("sup-pause", "sup-db-cut") and f.duration < SHORT
        )
        answers_lost = f.kind == "sup-db-lost" and f.duration >= ANSWERS_LOST_BOUND
        if lost or answers_lost:
            bound = REPLACED_BOUND if lost else ANSWERS_LOST_BOUND
            if not later:
                return [f"{f.kind} of the active supervisor at {f.at:.3f} s: never replaced"]
            self.replaced_in = later[0][0] - f.at
            if self.replaced_in > bound:
                return [
                    f"{f.kind} of the active supervisor at {f.at:.3f} s for {f.duration:.3f} s: "
                    f"no supervisor acted until {later[0][0]:.3f} s, {self.replaced_in:.3f} s "
                    f"later (bound {bound:g} s)"
                ]
        elif survived and later:
            t, pid, epoch = later[0]
            return [
                f"{f.kind} of the active supervisor for {f.duration:.3f} s at {f.at:.3f} s: "
                f"pid {pid} took the lease at epoch {epoch} at {t:.3f} s (it should have "
                "survived it)"
            ]
        return []


def judge_redundant(schedule: RedundantSchedule) -> list[str]:
    """Every violation: the schedule's own (tests/sim/verdict.py) and the supervisors'."""
    from .verdict import judge

    return judge(schedule) + schedule.judge_supervisors()
