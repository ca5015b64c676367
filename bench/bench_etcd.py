"""etcd beside our server: the same reads and fan-out on the same machine, as ratios (issue 16).

etcd is Debian's ``etcd-server`` package (bookworm: 3.4), installed by
``bench/etcd_peer.py`` as root when missing (the benchmark is skipped, with a
note, where it cannot be had): one member, client and peer URLs on 127.0.0.1, a
temporary data directory, default settings (the write-ahead log fsynced at
every commit). Every etcd request goes through its JSON/HTTP gRPC gateway on
the client port, over HTTP/1.1 keep-alive connections spoken with h11 (the
sans-IO HTTP library), keys and values in base64; there is no gRPC client in
this project, so the gateway is the protocol a client gets without one, and
its cost is part of etcd's figures. Our server runs as in
``bench_confserv`` (a ``confserv`` process on SQLite, ADDP off) and our
clients are the same code (``bench/confserv_clients.py``). Absolute figures
move from run to run on this shared machine; each pair below is measured in
the same run, one right after the other, and the ratio is the figure the
targets are about.

(1) Reads at 32 concurrent clients, one request in flight per client, for a
fixed window, clients in this process (trio) and then split over 2 worker
processes: ours are reads by dbid through the client library (benchmark 1 of
``bench_confserv``); etcd's are ``POST /v3/kv/range`` of one key
``bench-host-<n>`` (cycling over 101 keys, as ours cycle over 101 dbids)
whose value is the JSON of a Host as our server keeps it; each answer is
parsed and the value decoded, as our client decodes its answer. etcd's
headline is its ``serializable`` range (served from the member's memory, as
our primary serves from its own); its default linearizable range (a Raft
read index per request) is shown beside it. Three rounds, each measuring
every case one after the other; each figure is its best round (the one least
disturbed by other processes), every round's rate in its notes. Target: ours
at least 2x etcd's.

(2) One write to 1,000 watchers, each on its own TCP connection, held by 2
worker processes (500 each): for each of 30 writes 200 ms apart, the time from
sending the write until the last watcher has decoded it (``time.monotonic``,
one clock for all processes), p99 over the writes. etcd's watchers are
``POST /v3/watch`` streams of one key through the gateway (newline-delimited
JSON in a chunked response; the value decoded), on plain sockets in one epoll
loop per process, the writer a ``POST /v3/kv/put`` from this process. Ours
are benchmark 3 of ``bench_confserv``: lean subscribers (plain sockets and
the sans-IO ADDP connection in one epoll loop, like etcd's watchers) and
subscribers using the client library (trio); etcd has no counterpart of the
latter here (no gRPC client), so both of ours are set beside its lean
watchers. etcd runs first, then ours, each with its own fresh server. Targets: ours with the client
library p99 <= 50 ms, lean <= 20 ms; each shown beside etcd's as a ratio
(below 1: ours faster). Run alone with
``.venv/bin/python -m bench.bench_etcd [--quick] [reads|fanout]``."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import trio

from bench import bench_confserv
from bench._report import Benchmark, Result, figure, main, report
from bench.confserv_clients import READ_OBJECTS, create_hosts, read_load
from bench.confserv_server import sqlite_server
from bench.etcd_peer import (
    READ_KEYS,
    EtcdClient,
    EtcdProcess,
    etcd_binary,
    etcd_workers,
    host_value,
    put_hosts,
    range_load,
    running_etcd,
)
from bench.measure import CpuWindow, raise_open_file_limit
from bench.worker_procs import Worker, timed_load, workers
from tests.helpers.debian import ProgramUnavailable
from tests.helpers.stats import median, percentile

#: Concurrent read clients, the worker processes of the split run, seconds per window.
READ_CLIENTS = 32
READ_PROCESSES = 2
READ_SECONDS = 4.0
#: Rounds of every read case (each figure is its best round).
READ_ROUNDS = 3
#: Target of (1): ours at least this many times etcd's rate.
READ_RATIO_TARGET = 2.0
#: Watchers of (2), their worker processes, the writes and the pause between two.
SUBSCRIBERS = 1_000
SUBSCRIBER_PROCESSES = 2
FANOUT_WRITES = 30
FANOUT_GAP = 0.2
#: Targets of (2): p99 until the last subscriber has it, ms.
LEAN_TARGET_MS = 20.0
LIBRARY_TARGET_MS = 50.0
#: The key etcd's watchers watch and the writer puts.
FANOUT_KEY = "fanout"
#: The smallest settings (``--quick``).
QUICK = {
    "READ_CLIENTS": 4,
    "READ_SECONDS": 0.5,
    "READ_ROUNDS": 1,
    "SUBSCRIBERS": 10,
    "FANOUT_WRITES": 3,
}
WARNING = "both sides' figures suffer; the ratios less so"


def _unavailable(what: str, exc: Exception) -> list[Result]:
    print(f"  etcd cannot be had, {what} not compared: {exc}", flush=True)
    return [figure(f"etcd: {what}", math.nan, "", notes=f"not run: {exc}")]


def _cpu(used: dict[str, float], wall: float, names: list[str]) -> str:
    """CPU of the named processes and of the rest of the machine, as % of one core."""
    shares = [(name, used[name] / wall * 100) for name in names]
    others = max(0.0, used["machine"] / wall * 100 - sum(pct for _, pct in shares))
    parts = ", ".join(f"{name} {pct:.0f}%" for name, pct in [*shares, ("other processes", others)])
    text = f"CPU as % of one core: {parts}"
    if others >= 20:
        text += "; OTHER PROCESSES TOOK CPU"
    return text


def _ratio(name: str, ours: float, theirs: float, target: bool, notes: str) -> Result:
    ratio = ours / theirs if theirs > 0 else math.nan
    return figure(
        name,
        ratio,
        "x",
        f">= {READ_RATIO_TARGET:g}x" if target else "",
        (ratio >= READ_RATIO_TARGET) if target else None,
        notes,
        precision=2,
    )


# -- 1. reads -----------------------------------------------------------------------------


def _ours_here(port: int, pid: int) -> tuple[float, str]:
    windows: list[CpuWindow] = []

    async def go() -> None:
        windows.append(CpuWindow({"server": pid, "client process": None}))

    run = trio.run(read_load, port, READ_CLIENTS, READ_SECONDS, go, "etcd-cmp-")
    note = _cpu(windows[0].seconds(), run.wall, ["server", "client process"])
    return run.count / run.wall, f"{run.count:,} reads in {run.wall:.2f} s; {note}"


def _etcd_here(etcd: EtcdProcess, serializable: bool) -> tuple[float, str]:
    windows: list[CpuWindow] = []

    async def go() -> None:
        windows.append(CpuWindow({"etcd": etcd.pid, "client process": None}))

    run = trio.run(range_load, etcd.port, READ_CLIENTS, READ_SECONDS, go, serializable)
    note = _cpu(windows[0].seconds(), run.wall, ["etcd", "client process"])
    return run.count / run.wall, f"{run.count:,} ranges in {run.wall:.2f} s; {note}"


def _split(
    start: contextlib.AbstractContextManager[Sequence[Worker]], pid: int, name: str
) -> tuple[float, str]:
    """Rate of the READ_PROCESSES workers ``start`` opens (READY, GO, one JSON line each)."""
    with start as started:
        runs, wall, used = timed_load(started, {name: pid})
    for i, run in enumerate(runs):
        used[f"worker {i + 1}"] = run.cpu * wall / run.wall
    names = [name, *(f"worker {i + 1}" for i in range(len(runs)))]
    count = sum(r.count for r in runs)
    return sum(r.count / r.wall for r in runs), f"{count:,} requests; {_cpu(used, wall, names)}"


def _best(runs: list[tuple[float, str]]) -> tuple[float, str]:
    """The best round's rate and a note: every round's rate, then that round's CPU."""
    rate, note = max(runs)
    if len(runs) == 1:
        return rate, note
    rates = ", ".join(f"{r:,.0f}" for r, _ in runs)
    return rate, f"best of {len(runs)} rounds ({rates}/s); that round: {note}"


def bench_reads() -> list[Result]:
    """(1): reads at 32 clients, ours by dbid and etcd's ranges by key, in 1 and 2 processes.

    :data:`READ_ROUNDS` rounds, each measuring every case one after the other;
    each figure is its best round (the least disturbed by other processes).
    """
    try:
        binary = etcd_binary()
    except ProgramUnavailable as exc:
        return _unavailable("reads", exc)
    each = READ_CLIENTS // READ_PROCESSES
    print(
        f"[1] reads, {READ_CLIENTS} clients, {READ_SECONDS:g} s windows, {READ_ROUNDS} rounds: "
        f"ours by dbid, etcd's range by key; clients in this process, then in "
        f"{READ_PROCESSES} worker processes",
        flush=True,
    )
    cases = ("ours", "serializable", "linearizable", "ours split", "etcd split")
    runs: dict[str, list[tuple[float, str]]] = {case: [] for case in cases}
    with (
        tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp,
        sqlite_server(Path(tmp), "reads") as server,
        running_etcd(binary) as etcd,
    ):
        trio.run(create_hosts, server.port, READ_OBJECTS)
        put_hosts(etcd.port, READ_KEYS + 1)
        ours_args = [
            ["read-worker", str(server.port), str(each), str(READ_SECONDS), f"ew{i}-"]
            for i in range(READ_PROCESSES)
        ]
        etcd_args = [
            ["range-worker", str(etcd.port), str(each), str(READ_SECONDS), "serializable"]
            for _ in range(READ_PROCESSES)
        ]
        for round_ in range(READ_ROUNDS):
            runs["ours"].append(_ours_here(server.port, server.pid))
            runs["serializable"].append(_etcd_here(etcd, serializable=True))
            runs["linearizable"].append(_etcd_here(etcd, serializable=False))
            runs["ours split"].append(_split(workers(ours_args), server.pid, "server"))
            runs["etcd split"].append(_split(etcd_workers(etcd_args), etcd.pid, "etcd"))
            rates = ", ".join(f"{case} {runs[case][-1][0]:,.0f}/s" for case in cases)
            print(f"    round {round_ + 1}: {rates}", flush=True)
    ours, ours_note = _best(runs["ours"])
    fast, fast_note = _best(runs["serializable"])
    slow, slow_note = _best(runs["linearizable"])
    where = f"{READ_CLIENTS} clients in this process"
    results = [
        figure(f"Reads/s, {where}: ours, by dbid", ours, "req/s", notes=ours_note),
        figure(f"Reads/s, {where}: etcd, serializable range", fast, "req/s", notes=fast_note),
        _ratio(
            f"Reads, {where}: ours ÷ etcd (serializable)",
            ours,
            fast,
            True,
            f"ours {ours:,.0f}/s, etcd {fast:,.0f}/s, best rounds of the same run",
        ),
        figure(f"Reads/s, {where}: etcd, linearizable range", slow, "req/s", notes=slow_note),
        _ratio(
            f"Reads, {where}: ours ÷ etcd (linearizable)",
            ours,
            slow,
            False,
            f"ours {ours:,.0f}/s, etcd {slow:,.0f}/s (etcd's default range)",
        ),
    ]
    ours, ours_note = _best(runs["ours split"])
    theirs, theirs_note = _best(runs["etcd split"])
    where = f"{READ_CLIENTS} clients in {READ_PROCESSES} processes"
    results += [
        figure(f"Reads/s, {where}: ours, by dbid", ours, "req/s", notes=ours_note),
        figure(f"Reads/s, {where}: etcd, serializable range", theirs, "req/s", notes=theirs_note),
        _ratio(
            f"Reads, {where}: ours ÷ etcd (serializable)",
            ours,
            theirs,
            True,
            f"ours {ours:,.0f}/s, etcd {theirs:,.0f}/s, {each} clients per worker process",
        ),
    ]
    return results


# -- 2. fan-out ---------------------------------------------------------------------------


def ours_fanout(worker: str, label: str, target: float) -> Result:
    """``bench_confserv.fanout_run`` (its figure not printed) under this module's target."""
    shape = bench_confserv.FanoutShape(SUBSCRIBERS, SUBSCRIBER_PROCESSES, FANOUT_WRITES, FANOUT_GAP)
    with contextlib.redirect_stdout(io.StringIO()):
        got = bench_confserv.fanout_run(worker, label, target, shape)
    return report(
        replace(got, name=f"Fan-out to {SUBSCRIBERS:,} {label}: ours, p99 until the last has it")
    )


def fanout_puts(port: int, key: str, writes: int, gap: float) -> list[tuple[int, float, float]]:
    """``writes`` puts of ``key`` ``gap`` s apart: (revision, sent, answered) monotonic,
    as :func:`bench.confserv_clients.fanout_writes` does for ours."""
    client = EtcdClient(port)
    out: list[tuple[int, float, float]] = []
    try:
        client.put(key, host_value(0))
        time.sleep(gap)
        for i in range(writes):
            obj = json.loads(host_value(0))
            obj["options"] = {"bench": {"n": str(i)}}
            value = json.dumps(obj, separators=(",", ":")).encode()
            sent = time.monotonic()
            revision = client.put(key, value)
            out.append((revision, sent, time.monotonic()))
            time.sleep(gap)
    finally:
        client.close()
    return out


def etcd_fanout(etcd: EtcdProcess) -> Result:
    """One write to :data:`SUBSCRIBERS` etcd watchers, as ``fanout_run`` does for ours."""
    each = SUBSCRIBERS // SUBSCRIBER_PROCESSES
    args = [
        ["watch-worker", str(etcd.port), str(each), FANOUT_KEY] for _ in range(SUBSCRIBER_PROCESSES)
    ]
    opened = time.perf_counter()
    with etcd_workers(args) as started:
        try:
            for one in started:
                one.expect("READY")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nlast lines of etcd's log:\n{etcd.log_tail()}") from exc
        opened = time.perf_counter() - opened
        window = CpuWindow({"etcd": etcd.pid, "mine": None})
        wall = time.perf_counter()
        writes = fanout_puts(etcd.port, FANOUT_KEY, FANOUT_WRITES, FANOUT_GAP)
        wall = time.perf_counter() - wall
        used = window.seconds()
        time.sleep(0.5)  # let late events arrive, as fanout_run does
        for one in started:
            one.tell("STOP")
        reports = [json.loads(one.line()) for one in started]
    latencies: list[float] = []
    firsts: list[float] = []
    acks: list[float] = []
    missing = 0
    for revision, sent, answered in writes:
        entries = [e for r in reports if (e := r["seen"].get(str(revision)))]
        missing += SUBSCRIBERS - sum(e[0] for e in entries)
        if entries:
            latencies.append((max(e[2] for e in entries) - sent) * 1000)
            firsts.append((min(e[1] for e in entries) - sent) * 1000)
        acks.append((answered - sent) * 1000)

    def per_write(cpu: float) -> float:
        return cpu / len(writes) * 1000

    others = max(
        0.0, used["machine"] - used["etcd"] - used["mine"] - sum(r["cpu"] for r in reports)
    )
    how = (
        f"{len(writes)} puts of one key {FANOUT_GAP * 1000:.0f} ms apart, {SUBSCRIBERS:,} "
        f"watchers (POST /v3/watch through the gateway), each on its own TCP connection, "
        f"{each} per worker process; from sending the put until the last watcher has decoded "
        f"the event; median {median(latencies):.1f} ms, max {max(latencies, default=math.nan):.1f}"
        f" ms; first watcher after median {median(firsts):.1f} ms; the writer's own answer "
        f"after median {median(acks):.1f} ms; CPU per write: etcd {per_write(used['etcd']):.0f}"
        f" ms, watcher processes "
        + " + ".join(f"{per_write(r['cpu']):.0f}" for r in reports)
        + f" ms; watch streams created in {opened:.1f} s; other processes used "
        f"{others / wall * 100:.0f}% of one core during the writes"
    )
    if missing:
        how += f"; {missing:,} events NEVER ARRIVED"
    if others / wall * 100 >= 20:
        how += "; OTHER PROCESSES TOOK CPU: this figure is high"
    return figure(
        f"Fan-out to {SUBSCRIBERS:,} watchers: etcd, p99 until the last has it",
        percentile(latencies, 99) if latencies else math.nan,
        "ms",
        notes=how,
        precision=1,
    )


def bench_fanout() -> list[Result]:
    """(2): one write to 1,000 watchers, etcd's and ours (lean and client library)."""
    try:
        binary = etcd_binary()
    except ProgramUnavailable as exc:
        return _unavailable("fan-out", exc)
    print(
        f"[2] fan-out: {SUBSCRIBERS:,} watchers in {SUBSCRIBER_PROCESSES} processes, "
        f"{FANOUT_WRITES} writes {FANOUT_GAP * 1000:.0f} ms apart: etcd, then ours with lean "
        "subscribers, then ours with client-library subscribers",
        flush=True,
    )
    raise_open_file_limit(SUBSCRIBERS + 512)  # etcd and our server inherit it
    with running_etcd(binary) as etcd:
        theirs = etcd_fanout(etcd)
    lean = ours_fanout("lean-subscribe-worker", "lean subscribers", LEAN_TARGET_MS)
    library = ours_fanout("subscribe-worker", "client-library subscribers", LIBRARY_TARGET_MS)
    results = [theirs, lean, library]
    for ours, label in ((lean, "lean subscribers"), (library, "client-library subscribers")):
        results.append(
            figure(
                f"Fan-out p99, ours ({label}) ÷ etcd",
                ours.value / theirs.value if theirs.value > 0 else math.nan,
                "x",
                notes=f"ours {ours.value:.1f} ms, etcd {theirs.value:.1f} ms, same run; "
                "below 1: ours faster",
                precision=2,
            )
        )
    return results


BENCHMARKS: dict[str, Benchmark] = {"reads": bench_reads, "fanout": bench_fanout}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
