"""Fault injection: failover time per fault kind, on SQLite and on PostgreSQL, and violations.

Runs seeded one-fault schedules of :mod:`tests.chaos.real` (the real ``scs -f``, a pair
and a proxy, every link through a fault-injecting relay; ADDP timeout 1 s,
lease 2 s renewed every 0.4 s) for a few minutes per engine, and reports,
per fault kind that is meant to cause a failover, the time from the fault to
the first write acknowledged in a newer epoch through the resilient client
library (it writes every 5 ms). Faults drawn: SIGKILL and SIGSTOP of any
server or of the supervisor, partitions (cut, blackhole, half-open, delay)
between any two components, database stalls and (PostgreSQL) restarts,
SIGKILL in the middle of a promotion. The checker's verdict (no acknowledged
write lost, one writer per epoch, epochs only increase, no client sees serials
go back, no failover for a fault shorter than its bound) is the last figure.
The plots show one distribution per fault kind.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import trio

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from tests.chaos import real
from tests.chaos.report import Summary
from tests.helpers.stats import median, percentile

#: Schedules per engine, and the time each engine may take (whichever ends first).
SCHEDULES = int(os.environ.get("BENCH_CHAOS_SCHEDULES", "120"))
MINUTES = float(os.environ.get("BENCH_CHAOS_MINUTES", "5"))
QUICK = {"SCHEDULES": 1}
#: One fault per schedule here, so that each failover has one cause (make chaos
#: also draws two).
MOST = 1
#: Short names for the plots' legends.
SHORT = {
    "kill primary": "SIGKILL primary",
    "kill-mid-promotion primary+backup": "SIGKILL primary, then backup mid-promotion",
    "pause primary long": "SIGSTOP primary 2.5-4 s",
    "db-stall database long": "database stalled 2.5-4 s",
    "db-restart database": "PostgreSQL restart",
}
#: The supervisor issue's targets: SIGKILL failover median and p99; a stalled
#: primary replaced within 2.5 s (ADDP 1 s, lease 2 s).
KILL_P50, KILL_P99, STALL_P50 = 0.250, 1.0, 2.5
TARGETS = {"kill primary": (KILL_P50, KILL_P99), "pause primary long": (STALL_P50, None)}


def _figures(summary: Summary) -> list[Result | Plot]:
    engine = summary.engine
    out: list[Result | Plot] = []
    for kind, times in sorted(summary.failover_times.items()):
        p50, p99 = median(times), percentile(times, 99)
        t50, t99 = TARGETS.get(kind, (None, None))
        how = (
            f"{len(times)} faults '{kind}' in {summary.schedules} schedules on {engine}: fault to "
            f"the first write acknowledged in a newer epoch; max {max(times):.3f} s"
        )
        if kind in summary.slowest:
            how += f" (replay: {summary.slowest[kind][1]})"
        for stat, value, target, notes in (
            ("median", p50, t50, how),
            ("p99", p99, t99, "nearest rank over the same faults"),
        ):
            out.append(
                figure(
                    f"{engine}: failover after {kind}, {stat}",
                    value,
                    "s",
                    f"<= {target:g} s" if target is not None else "",
                    None if target is None else value <= target,
                    notes,
                    precision=3,
                )
            )
    faults = ", ".join(f"{k} {v}" for k, v in sorted(summary.faults.items()))
    out.append(
        figure(
            f"{engine}: invariant violations",
            len(summary.violations),
            "",
            "0",
            not summary.violations,
            f"{summary.schedules} schedules in {summary.seconds:.0f} s, {summary.requests} "
            f"requests, {summary.acked} acknowledged writes, {summary.failovers} failovers; "
            f"faults: {faults}"
            + (f"; first: {summary.violations[0]}" if summary.violations else ""),
        )
    )
    plotted_times = {
        SHORT.get(kind, kind): times
        for kind, times in summary.failover_times.items()
        if "not attributed" not in kind
    }
    out.append(
        plotted(
            failover_plot(
                f"chaos_failover_{engine}",
                f"Failover time per fault kind on {engine} ({summary.schedules} seeded one-fault "
                "schedules of the real system): fault to the first write acknowledged in a "
                "newer epoch",
                plotted_times,
                target=STALL_P50,
                target_label=f"target for a stalled primary: median <= {STALL_P50:g} s",
            )
        )
    )
    return out


def bench_chaos() -> list[Result | Plot]:
    """Both engines, one after the other."""
    out: list[Result | Plot] = []
    for engine in ("sqlite", "postgre"):
        print(f"[{engine}] up to {SCHEDULES} schedules in {MINUTES:g} min", flush=True)
        deadline = time.monotonic() + MINUTES * 60
        run = functools.partial(real.run, most=MOST)
        summary = trio.run(run, SCHEDULES, 1000, engine, deadline)
        out += _figures(summary)
    return out


BENCHMARKS: dict[str, Benchmark] = {"chaos": bench_chaos}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
