"""Fault injection on the real system: ``scs -f``, a pair and a proxy, as processes.

Each seeded schedule injects one or two faults (SIGKILL of the primary, the
backup, the proxy or the supervisor; SIGSTOP of the primary for less than the
detection bound, or for longer) while a client writes through the resilient
client library and another reads through the proxy, recording every request.
The pair is left to heal, then :mod:`tests.chaos.checker` judges the record.
Run: ``python -m tests.chaos.real --schedules 100 --engine sqlite``.

Not yet injected here (the simulation covers some of them): network
partitions through a fault-injecting relay, database restarts and stalls.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from confserv.client import open_client
from confserv.errors import ConfServError, ConnectionLostError, RequestError
from confserv.resilient import open_resilient_client

from ..helpers.system import PASSWORD, System, healthy, primary_of
from .checker import Fault, Record, Request, check

#: Two ADDP timeouts of the supervisor's links: no failover for a shorter stall.
DETECTION_BOUND = 2.0
KINDS = ("kill-primary", "kill-backup", "kill-proxy", "kill-scs", "stall-short", "stall-long")


async def _writer(
    system: System, record: Record, stop: trio.Event, sections: dict[int, str]
) -> None:
    servers = [system.address("confserv"), system.address("backup")]
    async with open_resilient_client(
        servers, app="chaos-w", user="default", password=PASSWORD, reconnect_timeout=0.02
    ) as rc:
        n = 0
        while not stop.is_set():
            key = f"c{time.monotonic_ns()}-{n}"
            n += 1
            start = trio.current_time()
            try:
                answer = await rc.create("DN", {"name": key})
                where = rc.address
                record.requests.append(
                    Request(
                        "w",
                        "write",
                        start,
                        trio.current_time(),
                        "ok",
                        answer["serial"],
                        answer["epoch"],
                        sections.get(where[1]) if where else None,
                        key,
                    )
                )
            except ConnectionLostError:
                record.requests.append(
                    Request("w", "write", start, trio.current_time(), "unknown", key=key)
                )
            except RequestError:
                record.requests.append(
                    Request("w", "write", start, trio.current_time(), "error", key=key)
                )
            await trio.sleep(0.005)


async def _reader(system: System, record: Record, stop: trio.Event) -> None:
    """Reads through the proxy: the serials it reports must never go back."""
    while not stop.is_set():
        try:
            async with open_client(
                [system.address("proxy")],
                app="chaos-r",
                user="default",
                password=PASSWORD,
                connect_timeout=2,
            ) as c:
                while not stop.is_set():
                    start = trio.current_time()
                    status = await c.status()
                    record.requests.append(
                        Request("r", "read", start, trio.current_time(), "ok", status["serial"])
                    )
                    await trio.sleep(0.05)
        except (OSError, ConfServError, trio.TooSlowError):
            await trio.sleep(0.1)


async def _promotions(system: System, record: Record, stop: trio.Event) -> None:
    seen: set[int] = set()
    while not stop.is_set():
        try:
            rows = await system.status()
            for name in ("confserv", "backup"):
                row = rows[name]
                if row["role"] == "primary" and row["epoch"] and row["epoch"] not in seen:
                    seen.add(row["epoch"])
                    record.promotions.append((trio.current_time(), row["epoch"], name))
        except (OSError, ConfServError, trio.TooSlowError):
            pass
        await trio.sleep(0.05)


async def _inject(system: System, fault: Fault, rows: dict[str, dict[str, Any]]) -> None:
    primary = primary_of(rows)
    backup = "backup" if primary == "confserv" else "confserv"
    if fault.kind == "kill-scs":
        assert system.proc is not None
        system.proc.kill()
        system.proc.wait()
        await trio.sleep(fault.duration)
        system.start(append=True)
        return
    target = {"kill-primary": primary, "kill-backup": backup, "kill-proxy": "proxy"}.get(
        fault.kind, primary
    )
    pid = rows[target]["pid"]
    if not pid:
        fault.kind = "missed"  # the target is down at this moment
        return
    try:
        if fault.kind.startswith("kill"):
            os.kill(pid, signal.SIGKILL)
            return
        os.kill(pid, signal.SIGSTOP)
        await trio.sleep(fault.duration)
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        fault.kind = "missed"  # the target had just died of an earlier fault


async def one_schedule(system: System, seed: int) -> tuple[Record, list[str]]:
    """Play one seeded schedule on a running system; its record and violations."""
    rng = random.Random(seed)
    record = Record(detection_bound=DETECTION_BOUND, settle=DETECTION_BOUND + 2.0 + 2.0)
    rows = await system.wait(healthy, timeout=90)
    sections = {system.ports[name]: name for name in ("confserv", "backup")}
    faults = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(KINDS)
        duration = {
            "stall-short": rng.uniform(0.1, 0.8),
            "stall-long": rng.uniform(2.5, 4.0),
            "kill-scs": rng.uniform(0.2, 1.0),
        }.get(kind, 0.0)
        faults.append((rng.uniform(0.3, 2.0), kind, duration))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_writer, system, record, stop, sections)
        nursery.start_soon(_reader, system, record, stop)
        nursery.start_soon(_promotions, system, record, stop)
        t0 = trio.current_time()
        for at, kind, duration in sorted(faults):
            await trio.sleep_until(t0 + at)
            fault = Fault(
                kind.replace("stall-short", "pause").replace("stall-long", "pause"),
                kind,
                trio.current_time(),
                duration,
            )
            record.faults.append(fault)
            await _inject(system, fault, rows)
            rows = await system.wait(lambda r: all(x["pid"] for x in r.values()), timeout=60)
        await system.wait(healthy, timeout=90)
        await trio.sleep(0.5)
        stop.set()
    rows = await system.wait(healthy, timeout=90)
    async with open_client(
        [system.address(primary_of(rows))], app="chaos-c", user="default", password=PASSWORD
    ) as c:
        record.committed = {d["name"] for d in await c.read("DN")}
    return record, check(record)


def _db_section(engine: str, stack: Any) -> str | None:
    if engine == "sqlite":
        return None
    from ..pg_cluster import running_cluster

    cluster = stack.enter_context(running_cluster())
    return (
        f"dbengine = postgre\ndbserver = {cluster.host}\nport = {cluster.port}\n"
        f"dbname = {cluster.create_database()}\nusername = {cluster.user}\n"
        f"password = {cluster.password}\n"
    )


async def run(schedules: int, seed: int, engine: str, deadline: float) -> dict[str, Any]:
    """Run schedules on one system until done or past ``deadline`` (monotonic seconds)."""
    import contextlib

    summary: dict[str, Any] = {
        "engine": engine,
        "schedules": 0,
        "faults": {},
        "failovers": 0,
        "acked": 0,
        "violations": [],
        "failover_times": {},
    }
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp), db_section=_db_section(engine, stack))
        system.start()
        try:
            for s in range(seed, seed + schedules):
                if time.monotonic() > deadline:
                    break
                record, violations = await one_schedule(system, s)
                summary["schedules"] += 1
                for f in record.faults:
                    summary["faults"][f.target] = summary["faults"].get(f.target, 0) + 1
                summary["failovers"] += record.failovers
                for f in record.faults:
                    if f.target in ("kill-primary", "stall-long"):
                        after = [t for t, _e, _s in record.promotions if t >= f.start]
                        if after:
                            summary["failover_times"].setdefault(f.target, []).append(
                                min(after) - f.start
                            )
                summary["acked"] += sum(
                    r.outcome == "ok" and r.op == "write" for r in record.requests
                )
                summary["violations"] += [f"seed {s}: {v}" for v in violations]
        finally:
            system.stop()
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run real schedules and print a summary; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("sqlite", "postgre"), default="sqlite")
    parser.add_argument("--minutes", type=float, default=13.0, help="stop starting schedules after")
    args = parser.parse_args(argv)
    started = time.monotonic()
    summary = trio.run(run, args.schedules, args.seed, args.engine, started + args.minutes * 60)
    took = time.monotonic() - started
    print(f"real schedules on {summary['engine']}: {summary['schedules']} in {took:.0f} s")
    print("faults by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["faults"].items())))
    print(
        f"failovers: {summary['failovers']}; acknowledged writes: {summary['acked']}; "
        f"violations: {len(summary['violations'])}"
    )
    for kind, times in sorted(summary["failover_times"].items()):
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"failover time after {kind} (fault to promotion seen by the supervisor, polled "
            f"every 50 ms): n={len(times)} median {times[len(times) // 2]:.3f} s, p99 {p99:.3f} s"
        )
    for line in summary["violations"][:10]:
        print("  " + line)
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
