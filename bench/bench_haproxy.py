"""HAProxy routing to the new primary after a SIGKILL, by the servers' ``GET /primary`` (issue 15).

A real HAProxy (Debian's package, installed when missing) in TCP mode in front
of the pair under ``scs -f`` (lease-ttl 2 s, ADDP 1 s), with ``option httpchk
GET /primary`` on each member's ``http-port``, ``inter 200ms fall 2 rise 1``,
``option redispatch`` and one retry (tests/helpers/haproxy.py). Each run: the
primary is SIGKILLed; the figure is the time from the kill until a new
connection through HAProxy has a write acknowledged (a backup refuses writes,
so that is the new primary; connections are tried every 20 ms). It covers the
supervisor's failover (its promotion 10-100 ms after the kill) and HAProxy's
check seeing the new primary (one check: rise 1). Target: at most 1 s.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import trio

from bench._report import Benchmark, Result, figure, main
from tests.helpers.debian import ProgramUnavailable, ensure_program
from tests.helpers.haproxy import first_write_through, running_haproxy
from tests.helpers.stats import median, percentile
from tests.helpers.system import MEMBERS, System, free_port, healthy, primary_of

RUNS = 20
QUICK = {"RUNS": 1}
TARGET = 1.0


async def _runs(system: System, binary: str, http: dict[str, int]) -> list[float]:
    front = free_port()
    members = {s: (system.ports[s], http[s]) for s in MEMBERS}
    routed: list[float] = []
    async with running_haproxy(binary, system.tmp, front, members):
        for i in range(RUNS):
            rows = await system.wait(healthy, timeout=60)
            await first_write_through(front, f"r{i}-before")
            old = primary_of(rows)
            os.kill(int(rows[old]["pid"]), signal.SIGKILL)
            killed = trio.current_time()
            routed.append(await first_write_through(front, f"r{i}-after") - killed)
            print(f"    run {i + 1}: routed {routed[-1] * 1000:.0f} ms after the kill", flush=True)

            def back(r: dict[str, dict[str, object]], old: str = old) -> bool:
                return healthy(r) and r[old]["role"] == "backup"

            await system.wait(back, timeout=60)
    return routed


def bench_haproxy() -> list[Result]:
    """:data:`RUNS` SIGKILLs of the primary behind HAProxy; median, p99, worst."""
    try:
        binary = ensure_program("haproxy")
    except ProgramUnavailable as exc:
        return [
            figure(
                "HAProxy: kill to a write routed to the new primary",
                float("nan"),
                "ms",
                f"<= {TARGET * 1000:.0f} ms",
                None,
                f"not run: {exc}",
            )
        ]
    print(f"[1] SIGKILL of the primary behind HAProxy, {RUNS} runs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-haproxy-") as tmp:
        http = {s: free_port() for s in MEMBERS}
        system = System(
            Path(tmp), server_lines={s: f"http-port = {http[s]}\n" for s in MEMBERS}, proxy=False
        )
        system.start()
        try:
            routed = [r * 1000 for r in trio.run(_runs, system, binary, http)]
        finally:
            system.stop()
    how = (
        f"{len(routed)} runs, kill to the first write through a new HAProxy connection: "
        + ", ".join(f"{r:.0f}" for r in routed)
        + " ms"
    )
    target = f"<= {TARGET * 1000:.0f} ms"
    return [
        figure(
            "HAProxy: kill to a write routed to the new primary, median",
            median(routed),
            "ms",
            target,
            median(routed) <= TARGET * 1000,
            how,
        ),
        figure(
            "HAProxy: kill to a write routed to the new primary, p99",
            percentile(routed, 99),
            "ms",
            target,
            percentile(routed, 99) <= TARGET * 1000,
            "of the runs above",
        ),
        figure(
            "HAProxy: kill to a write routed to the new primary, worst",
            max(routed),
            "ms",
            target,
            max(routed) <= TARGET * 1000,
            "of the runs above",
        ),
    ]


BENCHMARKS: dict[str, Benchmark] = {"haproxy": bench_haproxy}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
