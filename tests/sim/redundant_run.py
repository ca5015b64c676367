"""Running the redundant-supervisor schedules (tests/sim/redundant_schedule.py): one or many.

``python -m tests.sim.redundant_run --seed 7`` replays schedule 7 alone (``--trace``
prints its trace); ``python -m tests.sim.redundant_run --schedules 500 --seed 1`` runs
seeds 1 to 500 over two worker processes and prints the violations and a summary;
``--supervisors 3`` runs three supervisors (``scs-a``, ``scs-b``, ``scs-c``), not two;
``--faults 4``: up to four faults per schedule, not two.
Every schedule is decided by its seed alone, as those of :mod:`tests.sim.run`.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .redundant import SUPERVISORS, RedundantWorld
from .redundant_schedule import RedundantSchedule, judge_redundant
from .schedule import Planned
from .system import installation
from .world import World, run_world


@dataclass
class RedundantOutcome:
    """What one redundant schedule produced and what was found wrong."""

    seed: int
    violations: list[str]
    faults: list[str]
    failovers: int
    takeovers: int
    healthy_after: float | None
    replaced_in: float | None
    admitted: int
    trace: str = ""
    kinds: set[str] = field(default_factory=set)
    trapped: list[str] = field(default_factory=list)
    refused_at_host: list[str] = field(default_factory=list)


def replay_line(seed: int) -> str:
    """The command that replays redundant schedule ``seed`` alone."""
    return f"python -m tests.sim.redundant_run --seed {seed}"


def run_redundant(
    seed: int,
    *,
    trace: bool = False,
    planned: list[Planned] | None = None,
    supervisors: int = len(SUPERVISORS),
    trap: tuple[str, float] | None = None,
    most: int = 2,
) -> RedundantOutcome:
    """Run redundant schedule ``seed`` (or ``planned``'s faults) with ``supervisors``
    supervisor processes (``scs-a``, ``scs-b``, ...) and judge it; ``trap``: the first
    supervisor command of that ManagementClient method pauses its sender for that long
    (:func:`tests.sim.redundant.pause_at_command`)."""
    files, template = installation()
    names = tuple(f"scs-{chr(ord('a') + i)}" for i in range(supervisors))
    world = RedundantWorld(seed, files, template, names)
    schedule = RedundantSchedule(world, planned, trap, most)

    async def scenario(_world: World) -> None:
        await schedule.run()

    run_world(world, scenario)
    violations = judge_redundant(schedule)
    return RedundantOutcome(
        seed,
        violations,
        [f.target for f in schedule.record.faults],
        schedule.record.failovers,
        len(world.epoch_owner),
        schedule.healthy_at,
        schedule.replaced_in,
        len(world.admitted),
        trace=world.dump(100_000) if trace or violations else "",
        kinds={f.kind for f in schedule.record.faults},
        trapped=schedule.trapped,
        refused_at_host=schedule.refused_at_host(),
    )


_OPTIONS = [len(SUPERVISORS), 2]  # --supervisors, --faults: for the (forked) workers


def _one(seed: int) -> RedundantOutcome:
    outcome = run_redundant(seed, supervisors=_OPTIONS[0], most=_OPTIONS[1])
    if not outcome.violations:
        outcome.trace = ""
    return outcome


def outcomes(seeds: list[int], workers: int) -> Iterator[RedundantOutcome]:
    """Each seed's outcome, in order, computed by ``workers`` processes (1: in this one)."""
    if workers <= 1:
        yield from map(_one, seeds)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=installation) as pool:
        yield from pool.imap(_one, seeds, chunksize=4)


def main(argv: list[str] | None = None) -> int:
    """The command line (see module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.sim.redundant_run", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="the (first) seed")
    parser.add_argument("--schedules", type=int, default=1, help="how many schedules")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--trace", action="store_true", help="print the trace of one schedule")
    parser.add_argument("--supervisors", type=int, default=len(SUPERVISORS), help="how many")
    parser.add_argument("--faults", type=int, default=2, help="at most this many per schedule")
    args = parser.parse_args(argv)
    _OPTIONS[:] = [args.supervisors, args.faults]
    if args.schedules == 1:
        outcome = run_redundant(
            args.seed, trace=args.trace, supervisors=args.supervisors, most=args.faults
        )
        if outcome.trace:
            print(outcome.trace)
        for v in outcome.violations:
            print(f"VIOLATION seed {args.seed}: {v}")
        print(
            f"seed {args.seed}: faults {', '.join(outcome.faults) or 'none injected'}; "
            f"{outcome.takeovers} supervisor epochs, {outcome.admitted} commands admitted, "
            f"{outcome.failovers} failovers, healthy {outcome.healthy_after} s after the heal, "
            f"active replaced in {outcome.replaced_in} s, "
            f"{len(outcome.refused_at_host)} refused at the host, "
            f"{len(outcome.violations)} violations"
        )
        return 1 if outcome.violations else 0
    started = time.monotonic()
    bad = 0
    kinds: collections.Counter[str] = collections.Counter()
    healthy: list[float] = []
    replaced: list[float] = []
    admitted = refused = 0
    for outcome in outcomes(list(range(args.seed, args.seed + args.schedules)), args.workers):
        kinds.update(outcome.kinds)
        if outcome.healthy_after is not None:
            healthy.append(outcome.healthy_after)
        if outcome.replaced_in is not None:
            replaced.append(outcome.replaced_in)
        admitted += outcome.admitted
        for line in outcome.refused_at_host:
            refused += 1
            print(f"seed {outcome.seed}: refused at the host: {line}")
        if outcome.violations:
            bad += 1
            print(f"seed {outcome.seed}: {outcome.violations[0]} ({replay_line(outcome.seed)})")
    print(
        f"{args.schedules} schedules in {time.monotonic() - started:.0f} s, {bad} with "
        f"violations; faults {dict(sorted(kinds.items()))}; healthy after the heal within "
        f"{max(healthy, default=0):.2f} s (worst); {admitted} supervisor commands admitted; "
        f"{refused} launcher actions refused at the host (their supervisor no longer acted, "
        "as HostLauncher's before_spawn refuses them); "
        f"a lost active replaced in {len(replaced)} one-fault schedules within "
        f"{min(replaced, default=0):.2f}-{max(replaced, default=0):.2f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
