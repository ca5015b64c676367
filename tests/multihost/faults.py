"""Seeded fault schedules for the multi-host chaos engine, and how to apply them.

The generator is pure: a seed and the host roles (which named processes run on
which host) give the same schedule every time::

    roles = {"A": ["confserv-A", "lca-A"], "B": ["confserv-B", "lca-B"],
             "C": ["scs", "lca-C"], "D": ["postgres-D"], "E": ["postgres-E"]}
    schedule = generate(seed=7, roles=roles, horizon=20.0)
    for at, step, fault in timeline(schedule):     # sorted; undo before apply on ties
        ... wait until `at` seconds after the start ...
        apply(bed, fault) if step == "apply" else undo(bed, fault)

Every fault is healed ``duration`` seconds after it starts and ends within the
horizon; two faults that touch the same host never overlap in time (so each
fault's effect is exactly its interval), and at most ``max_concurrent`` faults
are active at once. A ``kill`` has nothing to undo: its duration is the time its
host is left alone to recover (by its agent or supervisor).

Process faults name processes; :func:`apply` finds their pid with
:meth:`TestBed.pid_of` (register the pids with :meth:`TestBed.register`, or start
them with ``spawn(..., name=...)``).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tests.multihost.netns import TestBed

__all__ = [
    "ALL_KINDS",
    "Fault",
    "FaultKind",
    "FaultSchedule",
    "apply",
    "generate",
    "timeline",
    "undo",
]

FaultKind = Literal["partition", "partition_one_way", "link_down", "crash", "pause", "kill"]
#: Every kind of fault, in the order :func:`generate` weighs them by default.
ALL_KINDS: tuple[FaultKind, ...] = (
    "partition",
    "partition_one_way",
    "link_down",
    "crash",
    "pause",
    "kill",
)
_HOST_KINDS = ("partition", "partition_one_way", "link_down", "crash")


@dataclass(frozen=True)
class Fault:
    """One fault: starts ``at`` seconds into the run, healed ``duration`` seconds later.

    ``args`` are two hosts for a partition (``partition_one_way`` drops only
    ``args[0] -> args[1]``), one host for ``link_down`` and ``crash``, and one
    process name for ``pause`` and ``kill``; ``hosts`` are the hosts it touches.
    """

    at: float
    kind: FaultKind
    args: tuple[str, ...]
    duration: float
    hosts: frozenset[str]

    @property
    def ends(self) -> float:
        """When the fault is healed."""
        return self.at + self.duration

    def __str__(self) -> str:
        """``t=1.250 partition A<->B for 0.800 s`` and the like."""
        what = {
            "partition": "<->".join(self.args),
            "partition_one_way": "->".join(self.args),
        }.get(self.kind, " ".join(self.args))
        return f"t={self.at:.3f} {self.kind} {what} for {self.duration:.3f} s"


@dataclass(frozen=True)
class FaultSchedule:
    """A generated schedule and what it was generated from."""

    seed: int
    horizon: float
    faults: tuple[Fault, ...]


def generate(
    seed: int,
    roles: Mapping[str, Sequence[str]],
    *,
    horizon: float = 20.0,
    kinds: Sequence[FaultKind] = ALL_KINDS,
    gap: tuple[float, float] = (0.2, 2.0),
    duration: tuple[float, float] = (0.3, 3.0),
    max_concurrent: int = 2,
) -> FaultSchedule:
    """A seeded schedule of faults over ``horizon`` seconds (pure: no clock, no I/O).

    ``roles`` maps each host to the names of the processes on it. Faults start
    ``gap`` seconds apart (uniform), last ``duration`` seconds (uniform, cut to
    end by ``horizon``), never overlap on a host, at most ``max_concurrent`` at a
    time. Kinds that cannot be drawn (a partition with one host, a process fault
    with no process) are left out.
    """
    if horizon <= 0 or not 0 < duration[0] <= duration[1] or not 0 < gap[0] <= gap[1]:
        raise ValueError("horizon, gap and duration must be positive, with min <= max")
    if max_concurrent < 1:
        raise ValueError("max_concurrent must be at least 1")
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(ALL_KINDS)}")
    owner = {name: host for host, names in roles.items() for name in names}
    hosts = sorted(roles)
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = 0.0
    while True:
        at += rng.uniform(*gap)
        if at + duration[0] > horizon:
            break
        active = [f for f in faults if f.ends > at]
        if len(active) >= max_concurrent:
            continue
        busy = set().union(*(f.hosts for f in active))
        choice = _draw(rng, kinds, [h for h in hosts if h not in busy], owner, busy)
        if choice is None:
            continue
        kind, args, touched = choice
        length = min(rng.uniform(*duration), horizon - at)
        while at + length > horizon:  # float rounding: end at the horizon, not after it
            length = math.nextafter(length, 0.0)
        faults.append(Fault(at, kind, args, length, touched))
    return FaultSchedule(seed, horizon, tuple(faults))


def _draw(
    rng: random.Random,
    kinds: Sequence[FaultKind],
    free: list[str],
    owner: Mapping[str, str],
    busy: set[str],
) -> tuple[FaultKind, tuple[str, ...], frozenset[str]] | None:
    """One fault on free hosts only, or ``None`` when no allowed kind fits."""
    processes = sorted(name for name, host in owner.items() if host not in busy)
    possible = [
        k
        for k in kinds
        if (k.startswith("partition") and len(free) >= 2)
        or (k in ("link_down", "crash") and free)
        or (k in ("pause", "kill") and processes)
    ]
    if not possible:
        return None
    kind = rng.choice(possible)
    if kind.startswith("partition"):
        a, b = rng.sample(free, 2)
        return kind, (a, b), frozenset((a, b))
    if kind in _HOST_KINDS:
        host = rng.choice(free)
        return kind, (host,), frozenset((host,))
    name = rng.choice(processes)
    return kind, (name,), frozenset((owner[name],))


def timeline(schedule: FaultSchedule) -> list[tuple[float, Literal["apply", "undo"], Fault]]:
    """Every apply and undo in time order; at the same instant undo comes first."""
    steps: list[tuple[float, int, int, Literal["apply", "undo"], Fault]] = []
    for index, fault in enumerate(schedule.faults):
        steps.append((fault.at, 1, index, "apply", fault))
        steps.append((fault.ends, 0, index, "undo", fault))
    steps.sort(key=lambda s: s[:3])
    return [(at, step, fault) for at, _, _, step, fault in steps]


def apply(bed: TestBed, fault: Fault) -> None:
    """Inflict ``fault`` on ``bed`` now."""
    match fault.kind:
        case "partition":
            bed.partition(*fault.args)
        case "partition_one_way":
            bed.partition(*fault.args, one_way=True)
        case "link_down":
            bed.link_down(fault.args[0])
        case "crash":
            bed.crash(fault.args[0])
        case "pause":
            _signal(bed.pause, bed, fault.args[0])
        case "kill":
            _signal(bed.kill, bed, fault.args[0])


def undo(bed: TestBed, fault: Fault) -> None:
    """Heal ``fault`` (a killed process stays dead: restarting it is not the bed's job)."""
    match fault.kind:
        case "partition":
            bed.heal(*fault.args)
        case "partition_one_way":
            bed.heal(*fault.args, one_way=True)
        case "link_down":
            bed.link_up(fault.args[0])
        case "crash":
            bed.recover(fault.args[0])
        case "pause":
            _signal(bed.resume, bed, fault.args[0])
        case "kill":
            pass


def _signal(how: Callable[[int], None], bed: TestBed, name: str) -> None:
    """Pause, resume or kill a named process; one already gone is no error (it died anyway)."""
    with contextlib.suppress(ProcessLookupError):
        how(bed.pid_of(name))
