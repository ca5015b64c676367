"""Running simulated schedules: one from its seed (replay), or many over the machine's cores.

``python -m tests.sim --seed 7`` replays schedule 7 alone and prints its
trace when it fails; ``python -m tests.sim --schedules 10000 --seed 1`` runs
10,000 schedules (seeds 1 to 10,000) over two worker processes and prints
the summary table. Every schedule is independent of the others: its seed
alone decides its faults, its clients' timing and trio's scheduling, so a
violation's replay line (``python -m tests.sim --seed N``) reproduces it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..chaos.checker import Record
from ..chaos.report import Summary, print_summary
from .schedule import Planned, Schedule
from .system import installation
from .verdict import failover_times, judge
from .world import World, run_world


@dataclass
class Outcome:
    """What one schedule produced and what was found wrong."""

    seed: int
    record: Record
    violations: list[str]
    times: dict[str, list[float]]
    failsafe: int = 0
    trace: str = ""
    stats: dict[str, int] = field(default_factory=dict)


def replay_line(seed: int) -> str:
    """The command that replays schedule ``seed`` alone."""
    return f"python -m tests.sim --seed {seed}"


def run_schedule(
    seed: int, *, trace: bool = False, planned: list[Planned] | None = None
) -> Outcome:
    """Run schedule ``seed`` and judge it; ``trace``: keep the world's trace text;
    ``planned``: these faults instead of those the seed draws (a regression test's)."""
    files, template = installation()
    world = World(seed, files, template)
    schedule = Schedule(world, planned)

    async def scenario(_world: World) -> None:
        await schedule.run()

    run_world(world, scenario)
    violations = judge(schedule)
    return Outcome(
        seed,
        schedule.record,
        violations,
        failover_times(schedule),
        failsafe=schedule.failsafe,
        trace=world.dump(100_000) if trace or violations else "",
        stats={"db_calls": world.db.calls, "lines": len(world.trace)},
    )


def _one(seed: int) -> Outcome:
    outcome = run_schedule(seed)
    if not outcome.violations:
        outcome.trace = ""
    return outcome


def outcomes(seeds: list[int], workers: int) -> Iterator[Outcome]:
    """Each seed's outcome, in order, computed by ``workers`` processes (1: in this one)."""
    if workers <= 1:
        yield from map(_one, seeds)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=installation) as pool:
        yield from pool.imap(_one, seeds, chunksize=8)


def run_many(count: int, first_seed: int, workers: int = 2) -> Summary:
    """Run schedules ``first_seed`` .. ``first_seed + count - 1``; the summary of them all."""
    summary = Summary("simulated", timed_to="first write acknowledged in a newer epoch")
    started = time.monotonic()
    failsafe = 0
    for outcome in outcomes(list(range(first_seed, first_seed + count)), workers):
        summary.add(outcome.record, outcome.violations, outcome.times, replay_line(outcome.seed))
        failsafe += outcome.failsafe
        if outcome.violations:
            print(
                f"seed {outcome.seed}: {len(outcome.violations)} violation(s); replay with "
                f"{replay_line(outcome.seed)}",
                flush=True,
            )
    summary.seconds = time.monotonic() - started
    summary.reached["failsafe (no database, the backup's acks)"] = failsafe
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line (see module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="the (first) seed")
    parser.add_argument("--schedules", type=int, default=1, help="how many schedules")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--trace", action="store_true", help="print the trace of one schedule")
    args = parser.parse_args(argv)
    if args.schedules == 1:
        outcome = run_schedule(args.seed, trace=args.trace)
        if outcome.trace:
            print(outcome.trace)
        for v in outcome.violations:
            print(f"VIOLATION seed {args.seed}: {v}")
        faults = ", ".join(f.target for f in outcome.record.faults) or "none injected"
        print(
            f"seed {args.seed}: faults {faults}; {len(outcome.record.requests)} requests, "
            f"{outcome.record.failovers} failovers, {len(outcome.violations)} violations"
        )
        return 1 if outcome.violations else 0
    summary = run_many(args.schedules, args.seed, args.workers)
    print_summary([summary])
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())
