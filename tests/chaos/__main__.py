"""``make chaos``: the simulation, then real schedules on SQLite and on PostgreSQL.

One summary table at the end; exit status 1 on any violation. The whole run
stops by itself within ``--minutes`` (40 by default): the simulation first
(:mod:`tests.sim`: 10,000 schedules of the real servers, supervisor and
clients on a virtual clock, over both cores, under ten minutes), then the time left is shared
between the two engines, each stopping when its share is used up or its
schedules are done. Every schedule is seeded; the first seed is fresh each run (from the clock)
unless ``--seed`` is given, and is printed at the start and in the summary;
a violation line says how to replay it (a simulated schedule alone, from its
seed; a real one with the whole sequence on its engine).
"""

from __future__ import annotations

import argparse
import sys
import time

import trio

from ..pg_cluster import find_pg_bin
from ..sim import run as simulation
from . import real
from .report import Summary, print_summary

#: Kept back from the budget for start-up and shutdown of each engine's system.
MARGIN = 75.0


def main(argv: list[str] | None = None) -> int:
    """Run everything and print the summary; see the module docstring. SIGTERM or
    Ctrl-C stops the run, and the real system under test with it (exit 130)."""
    status = 130
    try:
        status = _main(argv)
    except* KeyboardInterrupt:
        print("make chaos: interrupted; the system under test is stopped", file=sys.stderr)
    return status


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--simulated", type=int, default=10_000, help="simulated schedules")
    parser.add_argument("--real", type=int, default=110, help="real schedules per engine")
    parser.add_argument("--minutes", type=float, default=40.0, help="the whole run's limit")
    parser.add_argument("--workers", type=int, default=2, help="processes for the simulation")
    parser.add_argument(
        "--seed", type=int, default=None, help="first seed (default: a fresh one from the clock)"
    )
    args = parser.parse_args(argv)
    if args.seed is None:  # every run explores new schedules; the seed is printed to replay
        args.seed = int(time.time()) % 1_000_000
    print(f"first seed {args.seed} (replay this run with --seed {args.seed})", flush=True)
    started = time.monotonic()
    end = started + args.minutes * 60
    print(f"simulation: {args.simulated} schedules ...", flush=True)
    summaries: list[Summary] = [simulation.run_many(args.simulated, args.seed, args.workers)]
    if find_pg_bin() is None:  # both engines or none: say so now, not after the simulation
        print("make chaos: PostgreSQL binaries not found (set PG_BIN)", file=sys.stderr)
        return 2
    engines = ["sqlite", "postgre"]
    for i, engine in enumerate(engines):
        share = (end - time.monotonic()) / (len(engines) - i) - MARGIN
        print(f"real, {engine}: up to {args.real} schedules in {share:.0f} s ...", flush=True)
        deadline = time.monotonic() + share
        summaries.append(trio.run(real.run, args.real, args.seed, engine, deadline))
    print_summary(summaries)
    took = time.monotonic() - started
    total = sum(s.schedules for s in summaries[1:])
    print(f"{total} real and {summaries[0].schedules} simulated schedules in {took / 60:.1f} min")
    print(f"first seed {args.seed}: replay with python -m tests.chaos --seed {args.seed}")
    empty = [s.engine for s in summaries if s.schedules == 0]
    if empty:
        print(f"no schedule ran on: {', '.join(empty)} (out of time?)", file=sys.stderr)
    return 1 if empty or any(s.violations for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
