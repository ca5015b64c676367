"""A PostgreSQL failover under a running pair (issue 13): the longest write pause, 0 lost.

Each run: a fresh replicated PostgreSQL (``tests/pg_replica.py``: a primary and
a synchronous standby, ``synchronous_commit = on``), both listed in the
database section (``host = primary:port, standby:port``, ``connect-timeout =
1``), a pair of ``confserv`` processes on it (lease-ttl 2 s, lease-renew 0.4
s, no supervisor), and a client writing through the resilient client library.
After 30 acknowledged writes the PostgreSQL primary is SIGKILLed (postmaster
and children at once) and the standby promoted (``pg_promote``, returning
when it accepts writes): first at once, then, in as many runs again,
``lease-ttl`` + 1 s later (past the lease: the primary keeps its role by the
failsafe rule, without writes, and renews on the promoted standby). Each run
ends 30 writes after the promotion. Measured: the longest pause between two
acknowledged writes (it includes the outage and PostgreSQL's own promotion),
the time from the promotion to the first write acknowledged after it (the
servers' part, bounded by the next request, plus at most one
``connect-timeout``, plus the renewal retry once the lease has run out), and
the acknowledged writes missing afterwards from the new primary database,
read from it directly (must be 0). Every write must be acknowledged by the
same server at one epoch (one writer throughout).
``python -m bench.bench_db_failover --runs N`` (default 10).
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from confserv.config.settings import DatabaseSettings
from confserv.store.engines import open_store
from tests.helpers.nodes import Node, pair_nodes
from tests.helpers.stats import median
from tests.helpers.system import Writer
from tests.pg_replica import ReplicatedCluster, replicated_cluster

RUNS = 10
QUICK = {"RUNS": 1}
WARNING = "PostgreSQL, two servers and the writer share the cores: pauses grow"
LEASE_TTL, LEASE_RENEW, CONNECT_TIMEOUT = 2.0, 0.4, 1.0
#: Writes acknowledged before the fault, and after the promotion, in each run.
BEFORE = AFTER = 30
#: Seconds from the kill to a late promotion: past the lease (the failsafe holds the role).
LATE = LEASE_TTL + 1.0
#: The renewal retry of a primary that cannot reach its database: min(renew, margin / 2),
#: margin = min(ttl / 4, max(renew / 2, 0.05)) (confserv/ha/roles.py).
RETRY = min(LEASE_RENEW, min(LEASE_TTL / 4, max(LEASE_RENEW / 2, 0.05)) / 2)


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


@dataclass(frozen=True, slots=True)
class Run:
    """One run's figures, in seconds."""

    pause: float  # the longest gap between two acknowledged writes after the kill
    promotion: float  # the kill to the standby accepting writes (PostgreSQL's part)
    resume: float  # the promotion to the first write acknowledged after it (ours)
    lost: int
    acked: int


async def _run(directory: Path, outage: float) -> Run:
    """One run; the standby is promoted ``outage`` seconds after the kill."""
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
            killed = promoted = float("nan")
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(writer.run)
                    await writer.until(BEFORE)
                    killed = time.monotonic()
                    await trio.to_thread.run_sync(rc.kill_primary)
                    await trio.sleep(outage)
                    await trio.to_thread.run_sync(rc.promote_standby)
                    promoted = time.monotonic()
                    await writer.until(len(writer.acked) + AFTER)
                    writer.stop.set()
            except Exception:
                _tell(writer, killed, promoted, (first, second))
                raise
            resumed = writer.first_ack(promoted, first.address, 0)
            assert resumed is not None
            writers = {(a.address, a.epoch) for a in writer.acks}
            if len(writers) != 1:
                raise AssertionError(f"more than one writer: {sorted(writers)}")
            times = [a.at for a in writer.acks]
            pause = max(b - a for a, b in itertools.pairwise(times) if b > killed)
            lost = len(set(writer.acked) - await _names_in(rc, dbname))
            return Run(pause, promoted - killed, resumed.at - promoted, lost, len(writer.acked))


def _tell(writer: Writer, killed: float, promoted: float, nodes: tuple[Node, Node]) -> None:
    """What a failed run saw, printed before it is raised: the writer's outcomes since
    the kill and the tail of each server's event log (its directory is removed)."""
    now = time.monotonic()
    last = f"{now - writer.acks[-1].at:.1f} s ago" if writer.acks else "none"
    print(
        f"    the run failed {now - killed:.1f} s after the kill, {now - promoted:.1f} s after "
        f"the promotion; {len(writer.acked)} acknowledged, last {last}; "
        f"{len(writer.unknown)} cut off, refused: "
        f"{sorted({code for t, code in writer.refused if t > killed})}",
        flush=True,
    )
    for node in nodes:
        print(f"    --- {node.section}, last lines of its event log:", flush=True)
        for line in node.log_text().splitlines()[-30:]:
            print(f"    {line}", flush=True)


async def _runs(outage: float) -> list[Run]:
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-db-failover-") as tmp:
        for i in range(RUNS):
            directory = Path(tmp) / f"run{i}"
            directory.mkdir()
            run = await _run(directory, outage)
            out.append(run)
            print(
                f"    run {i + 1}: longest pause {run.pause * 1000:.0f} ms, kill to promoted "
                f"{run.promotion * 1000:.0f} ms, promotion to first write "
                f"{run.resume * 1000:.0f} ms, {run.lost} lost of {run.acked} acknowledged",
                flush=True,
            )
    return out


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values) + " ms"


def _figures(kind: str, runs: list[Run], bound: float, why: str) -> list[Result]:
    pauses = [r.pause for r in runs]
    resumes = [r.resume for r in runs]
    lost, acked = sum(r.lost for r in runs), sum(r.acked for r in runs)
    return [
        figure(
            f"{kind}: longest write pause, median",
            median(pauses) * 1000,
            "ms",
            notes=f"{len(runs)} runs, longest gap between two acknowledged writes after the "
            f"kill (it includes PostgreSQL's promotion): {_ms(pauses)}; kill to promoted: "
            f"{_ms([r.promotion for r in runs])}",
        ),
        figure(
            f"{kind}: longest write pause, max", max(pauses) * 1000, "ms", notes="the worst run"
        ),
        figure(
            f"{kind}: promotion to first write, max",
            max(resumes) * 1000,
            "ms",
            f"<= {bound * 1000:.0f} ms ({why})",
            max(resumes) <= bound,
            f"per run: {_ms(resumes)}",
        ),
        figure(
            f"{kind}: acknowledged writes lost",
            lost,
            "",
            "0",
            lost == 0,
            f"of {acked} acknowledged, read back from the promoted standby",
        ),
    ]


def bench_db_failover() -> list[Result | Plot]:
    """:data:`RUNS` failovers promoted at once, then :data:`RUNS` promoted after the lease
    ran out; each kind's pause median and worst, its bound, its lost count; one plot."""
    print(f"[1] PostgreSQL primary SIGKILLed, standby promoted at once, {RUNS} runs", flush=True)
    prompt = trio.run(_runs, 0.0)
    results: list[Result | Plot] = [
        *_figures("promoted at once", prompt, CONNECT_TIMEOUT, "connect-timeout")
    ]
    print(
        f"[2] PostgreSQL primary SIGKILLed, standby promoted {LATE:g} s later (the lease has "
        f"run out: failsafe), {RUNS} runs",
        flush=True,
    )
    late = trio.run(_runs, LATE)
    results += _figures("promoted late", late, CONNECT_TIMEOUT + RETRY, "connect-timeout + retry")
    results.append(
        plotted(
            failover_plot(
                "db_failover",
                "PostgreSQL failover under a running pair: longest write pause",
                {
                    "primary SIGKILLed, standby promoted at once": [r.pause * 1000 for r in prompt],
                    f"promoted {LATE:g} s later": [r.pause * 1000 for r in late],
                },
                unit="ms",
            )
        )
    )
    return results


BENCHMARKS: dict[str, Benchmark] = {"db_failover": bench_db_failover}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--runs" in argv:
        at = argv.index("--runs")
        RUNS = int(argv[at + 1])
        del argv[at : at + 2]
    main(sys.modules[__name__], argv)
