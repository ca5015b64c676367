"""A PostgreSQL failover under a running pair (issue 13): the longest write pause, 0 lost.

Each run: a fresh replicated PostgreSQL (``tests/pg_replica.py``: a primary and
a synchronous standby, ``synchronous_commit = on``), both listed in the
database section (``host = primary:port, standby:port``, ``connect-timeout =
1``), a pair of ``confserv`` processes on it (lease-ttl 2 s, lease-renew 0.4
s, no supervisor), and a client writing through the resilient client library.
After 30 acknowledged writes the PostgreSQL primary is SIGKILLed (postmaster
and children at once) and the standby promoted at once (``pg_promote``,
returning when it accepts writes); the run ends 30 writes later. Measured:
the longest pause between two acknowledged writes (it includes PostgreSQL's
own promotion), the time from the promotion to the first write acknowledged
after it (the servers' part: the bound is the next request plus at most one
``connect-timeout``), and the acknowledged writes missing afterwards from the
new primary database, read from it directly (must be 0). Every write must be
acknowledged by the same server at one epoch (one writer throughout).
``python -m bench.bench_db_failover --runs N`` (default 10).
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

import trio

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from confserv.config.settings import DatabaseSettings
from confserv.store.engines import open_store
from tests.helpers.nodes import pair_nodes
from tests.helpers.stats import median
from tests.helpers.system import Writer
from tests.pg_replica import ReplicatedCluster, replicated_cluster

RUNS = 10
QUICK = {"RUNS": 1}
WARNING = "PostgreSQL, two servers and the writer share the cores: pauses grow"
LEASE_TTL, LEASE_RENEW, CONNECT_TIMEOUT = 2.0, 0.4, 1.0
#: Writes acknowledged before the fault, and after the promotion, in each run.
BEFORE = AFTER = 30


def _db_section(rc: ReplicatedCluster, dbname: str) -> str:
    return (
        f"dbengine = postgre\ndbname = {dbname}\nhost = {rc.hosts}\n"
        f"username = {rc.user}\npassword = {rc.password}\n"
        f"connect-timeout = {CONNECT_TIMEOUT:g}\nresponse-timeout = 5\n"
    )


async def _names_in(rc: ReplicatedCluster, dbname: str) -> set[str]:
    """The DN names in the promoted standby's database, read from it directly."""
    pg = rc.standby
    db = DatabaseSettings(
        section="db",
        engine="postgre",
        host=f"{pg.host}:{pg.port}",
        dbname=dbname,
        username=rc.user,
        password=rc.password,
    )
    async with open_store(db) as store:
        snapshot = await store.load()
    return {o["name"] for o in snapshot.objects if o["type"] == "DN"}


async def _run(directory: Path) -> tuple[float, float, int, int]:
    """One run: (longest pause, promotion to first write, lost, acknowledged)."""
    with replicated_cluster() as rc:
        dbname = rc.create_database()
        with pair_nodes(
            directory,
            db_section=_db_section(rc, dbname),
            lease_ttl=LEASE_TTL,
            lease_renew=LEASE_RENEW,
        ) as pair:
            first, second = pair.masters
            first.start()
            await first.wait_role("primary", timeout=30)
            second.start()
            await second.wait_role("backup", timeout=30)
            writer = Writer([first.address, second.address])
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                await writer.until(BEFORE)
                killed = time.monotonic()
                await trio.to_thread.run_sync(rc.kill_primary)
                await trio.to_thread.run_sync(rc.promote_standby)
                promoted = time.monotonic()
                await writer.until(len(writer.acked) + AFTER)
                writer.stop.set()
            resumed = writer.first_ack(promoted, first.address, 0)
            assert resumed is not None
            writers = {(a.address, a.epoch) for a in writer.acks}
            if len(writers) != 1:
                raise AssertionError(f"more than one writer: {sorted(writers)}")
            times = [a.at for a in writer.acks]
            pause = max(b - a for a, b in itertools.pairwise(times) if b > killed)
            lost = len(set(writer.acked) - await _names_in(rc, dbname))
            return pause, resumed.at - promoted, lost, len(writer.acked)


async def _runs() -> list[tuple[float, float, int, int]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-db-failover-") as tmp:
        for i in range(RUNS):
            directory = Path(tmp) / f"run{i}"
            directory.mkdir()
            pause, resume, lost, acked = await _run(directory)
            out.append((pause, resume, lost, acked))
            print(
                f"    run {i + 1}: longest pause {pause * 1000:.0f} ms, promotion to first "
                f"write {resume * 1000:.0f} ms, {lost} lost of {acked} acknowledged",
                flush=True,
            )
    return out


def bench_db_failover() -> list[Result | Plot]:
    """:data:`RUNS` PostgreSQL failovers; the pause median and worst, the lost count."""
    print(f"[1] PostgreSQL primary SIGKILLed, standby promoted at once, {RUNS} runs", flush=True)
    runs = trio.run(_runs)
    pauses = [p for p, _, _, _ in runs]
    resumes = [r for _, r, _, _ in runs]
    lost = sum(n for _, _, n, _ in runs)
    acked = sum(a for _, _, _, a in runs)
    how = (
        f"{RUNS} runs, longest gap between two acknowledged writes around the fault (it "
        "includes pg_promote): " + ", ".join(f"{p * 1000:.0f}" for p in pauses) + " ms"
    )
    bound = CONNECT_TIMEOUT
    return [
        figure("longest write pause, median", median(pauses) * 1000, "ms", notes=how),
        figure("longest write pause, max", max(pauses) * 1000, "ms", notes="the worst run"),
        figure(
            "promotion to first write, max",
            max(resumes) * 1000,
            "ms",
            f"<= {bound * 1000:.0f} ms (connect-timeout)",
            max(resumes) <= bound,
            "per run: " + ", ".join(f"{r * 1000:.0f}" for r in resumes) + " ms",
        ),
        figure(
            "acknowledged writes lost",
            lost,
            "",
            "0",
            lost == 0,
            f"of {acked} acknowledged, read back from the promoted standby",
        ),
        plotted(
            failover_plot(
                "db_failover",
                "PostgreSQL failover under a running pair: longest write pause",
                {"primary SIGKILLed, standby promoted at once": [p * 1000 for p in pauses]},
                unit="ms",
            )
        ),
    ]


BENCHMARKS: dict[str, Benchmark] = {"db_failover": bench_db_failover}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--runs" in argv:
        at = argv.index("--runs")
        RUNS = int(argv[at + 1])
        del argv[at : at + 2]
    main(sys.modules[__name__], argv)
