"""Configuration Server: read rate, write latency, fan-out to 1,000 subscribers, start-up.

Every server is a separate ``confserv`` process (the console script on a
generated ``confserv.conf``, database prepared as ``cfgctl init`` does); the
clients are :func:`confserv.client.session.open_client` clients (the real client
library) in this process or in worker processes (``python -m bench.confserv_clients
read-worker|subscribe-worker ...``).
Everything runs on 127.0.0.1 with ADDP off and stops by itself.

(1) Reads of one object by dbid (``read("Host", {"dbid": n})``), one request
at a time per client, for a fixed window: 1 client, 32 clients in this
process, and 32 clients split over 2 worker processes. CPU of the server and
of every client process is shown beside each figure: on this 2-core machine
a process near 100% of one core is the bottleneck.

(2) Write latency: from sending a ``create`` or ``update`` until its answer,
i.e. committed (under the lease epoch check) and acknowledged; 250 creates
then 250 updates, one at a time, on SQLite (WAL, ``synchronous=FULL``) and on
PostgreSQL 15 (``tests/pg_cluster.py``: ``fsync`` and ``synchronous_commit``
on, the server defaults).

(3) One write to 1,000 subscribed clients, each on its own TCP connection,
held by 2 worker processes (500 each); the writer is this process. For each
of 30 writes (200 ms apart), the time from sending the ``update`` until the
last subscriber has decoded the notification. Every process reads
``time.monotonic()`` (``CLOCK_MONOTONIC``, one clock for the whole machine).
Run twice: with lean subscribers (a plain socket each and the sans-IO
``addp.Connection``, one epoll loop per process: about the cheapest a Python
client gets, so the figure is mostly the server's), then with subscribers
using the client library (``open_client``, trio), which shows the same
server when the clients compete with it for this machine's 2 cores. Targets
(issue 16): lean p99 <= 20 ms, client library <= 50 ms. Beside them, the
machine's floor: no server at all, this process writing one frame of a
notification's size to each of 1,000 loopback sockets (``os.write`` in a loop)
read and thrown away by 2 processes waiting in epoll, until the last read.

(4) Start-up with 100,000 objects: a SQLite database filled directly with
``sqlite3`` (rows as ``commit_plan`` writes them, counters raised to match,
bootstrap objects from ``cfgctl init``), then the time from spawning
``confserv`` until a client has registered and its first read is answered.
The server's own "Loaded N objects in X s" (event 20003) and its resident
memory after loading are shown beside it. Run alone with
``.venv/bin/python -m bench.bench_confserv [--quick] [reads|writes|fanout|startup]``."""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from addp import FrameKind, encode_frame, encode_payload
from bench._report import Benchmark, Result, figure, main
from bench.confserv_clients import (
    READ_OBJECTS,
    create_hosts,
    fanout_writes,
    read_load,
    write_latencies,
)
from bench.confserv_server import (
    confserv_process,
    fill_database,
    first_read,
    init_database_sync,
    loaded,
    postgres_server,
    sqlite_server,
    write_config,
)
from bench.measure import CpuWindow, fsync_ms, raise_open_file_limit, rss_kib
from bench.worker_procs import timed_load, workers
from tests.helpers.nodes import Node
from tests.helpers.stats import median, percentile
from tests.helpers.system import free_port

#: Target of benchmark 1, reads per second.
READ_TARGET = 20_000
#: Seconds of each timed read window (after every client has done one warm-up read).
READ_SECONDS = 4.0
#: Concurrent clients of the multi-client runs.
READ_CLIENTS = 32
#: Worker processes of the split run.
READ_PROCESSES = 2
#: A process at or above this share of one core is called the bottleneck.
BUSY = 90.0

#: Writes per engine in benchmark 2 (half creates, then half updates), after a warm-up.
WRITES = 500
WRITE_WARMUP = 20

#: Subscribers of benchmark 3, and the worker processes holding them.
SUBSCRIBERS = 1_000
SUBSCRIBER_PROCESSES = 2
FANOUT_WRITES = 30
#: Pause between two fan-out writes.
FANOUT_GAP = 0.2
#: Targets of benchmark 3 (issue 16): p99 of the time until the last subscriber has a
#: change, with the client library and with lean subscribers.
FANOUT_TARGET_MS = 50.0
LEAN_FANOUT_TARGET_MS = 20.0

#: Objects in the database of benchmark 4, and the start-up target.
STARTUP_OBJECTS = 100_000
STARTUP_TARGET = 3.0
STARTUP_RUNS = 3
#: Deadline for the server to serve after being spawned.
STARTUP_DEADLINE = 60.0
#: The smallest settings (``--quick``).
QUICK = {
    "READ_SECONDS": 0.5,
    "READ_CLIENTS": 4,
    "WRITES": 10,
    "WRITE_WARMUP": 2,
    "SUBSCRIBERS": 10,
    "FANOUT_WRITES": 3,
    "STARTUP_OBJECTS": 1_000,
    "STARTUP_RUNS": 1,
}
WARNING = "the CPU-bound figures below will be low"


# -- 1. reads -----------------------------------------------------------------------------


def _cpu_note(
    server_cpu: float, wall: float, count: int, clients: list[tuple[str, float]], machine: float
) -> str:
    """CPU of every process as % of one core over ``wall``, and which one limited the rate.

    ``server_cpu`` is the server's CPU seconds over the window; ``clients``
    holds ``(name, CPU seconds)`` of each client process; ``machine`` is the
    CPU seconds of the whole machine over the window (the rest is other
    processes, which should be near 0).
    """
    server_pct = server_cpu / wall * 100
    shares = [("server", server_pct)] + [(name, cpu / wall * 100) for name, cpu in clients]
    others = max(0.0, machine / wall * 100 - sum(pct for _, pct in shares))
    parts = ", ".join(f"{name} {pct:.0f}%" for name, pct in [*shares, ("other processes", others)])
    total = sum(pct for _, pct in shares) + others
    cores = os.cpu_count() or 1
    busiest = max(shares, key=lambda item: item[1])
    if busiest[1] >= BUSY:
        verdict = f"bottleneck: the {busiest[0]} process (at {busiest[1]:.0f}% of one core)"
    elif total >= BUSY * cores:
        verdict = f"bottleneck: the machine ({total:.0f}% of {cores * 100}% in use)"
    else:
        verdict = "no process near 100% of a core: latency-bound (one request in flight per client)"
    if others >= 20:
        verdict += "; OTHER PROCESSES TOOK CPU: this figure is low"
    per_read = server_cpu / count * 1e6
    return (
        f"CPU as % of one core: {parts}; {verdict}; server CPU per read {per_read:.0f} µs "
        f"(so one core serves at most ~{1e6 / per_read:,.0f} reads/s)"
    )


def bench_reads() -> list[Result]:
    """Benchmark 1: reads by dbid per second, 1 and 32 clients, server in its own process."""
    print(
        f"[1] reads by dbid: confserv process on SQLite, {READ_SECONDS:g} s windows; "
        f"1 client, {READ_CLIENTS} clients here, {READ_CLIENTS} clients in "
        f"{READ_PROCESSES} worker processes",
        flush=True,
    )
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp,
        sqlite_server(Path(tmp), "reads") as server,
    ):
        trio.run(create_hosts, server.port, READ_OBJECTS)
        for clients in (1, READ_CLIENTS):
            windows: list[CpuWindow] = []

            async def go(windows: list[CpuWindow] = windows) -> None:
                windows.append(CpuWindow({"server": server.pid}))

            run = trio.run(read_load, server.port, clients, READ_SECONDS, go, f"r{clients}-")
            used = windows[0].seconds()
            server_cpu, machine = used["server"], used["machine"]
            rate = run.count / run.wall
            results.append(
                figure(
                    f"Reads by dbid/s, {clients} client{'s' if clients > 1 else ''} "
                    "(clients in this process)",
                    rate,
                    "req/s",
                    f">= {READ_TARGET:,} req/s",
                    rate >= READ_TARGET,
                    f"{run.count:,} reads in {run.wall:.2f} s, one in flight per client "
                    f"({run.wall / run.count * clients * 1e6:.0f} µs per round trip); "
                    + _cpu_note(
                        server_cpu, run.wall, run.count, [("client process", run.cpu)], machine
                    ),
                )
            )
        results.append(read_in_processes(server))
    return results


def read_in_processes(server: Node) -> Result:
    """32 read clients split over :data:`READ_PROCESSES` worker processes."""
    each = READ_CLIENTS // READ_PROCESSES
    args = [
        ["read-worker", str(server.port), str(each), str(READ_SECONDS), f"w{i}-"]
        for i in range(READ_PROCESSES)
    ]
    with workers(args) as started:
        runs, wall, used = timed_load(started, {"server": server.pid})
    server_cpu, machine = used["server"], used["machine"]
    count = sum(r.count for r in runs)
    rate = sum(r.count / r.wall for r in runs)
    cpus = [(f"worker {i + 1}", r.cpu * wall / r.wall) for i, r in enumerate(runs)]
    return figure(
        f"Reads by dbid/s, {READ_CLIENTS} clients in {READ_PROCESSES} processes",
        rate,
        "req/s",
        f">= {READ_TARGET:,} req/s",
        rate >= READ_TARGET,
        f"{count:,} reads, {each} clients per worker process, one in flight per client; "
        + _cpu_note(server_cpu, wall, count, cpus, machine),
    )


# -- 2. write latency ---------------------------------------------------------------------


def _write_results(
    engine: str, creates: list[float], updates: list[float], how: str
) -> list[Result]:
    both = creates + updates
    ms = [x * 1000 for x in both]
    detail = (
        f"{len(creates)} creates then {len(updates)} updates of Hosts, one at a time, from "
        f"sending to the answer; creates median {median(creates) * 1000:.2f} ms, "
        f"updates median {median(updates) * 1000:.2f} ms, max {max(ms):.2f} ms; {how}"
    )
    return [
        figure(
            f"Write latency, median, {engine}",
            median(ms),
            "ms",
            notes=detail,
            precision=2,
        ),
        figure(
            f"Write latency, p99, {engine}",
            percentile(ms, 99),
            "ms",
            notes=f"nearest rank over {len(ms)} writes; same run as the median",
            precision=2,
        ),
    ]


def bench_writes() -> list[Result]:
    """Benchmark 2: committed-and-acknowledged write latency on SQLite and PostgreSQL."""
    print(f"[2] write latency: {WRITES} writes, one at a time, SQLite then PostgreSQL", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp:
        disk = fsync_ms(Path(tmp))
        with sqlite_server(Path(tmp), "writes") as server:
            creates, updates = trio.run(write_latencies, server.port, WRITES, WRITE_WARMUP)
    results += _write_results(
        "SQLite",
        creates,
        updates,
        f"SQLite WAL, synchronous=FULL (fsync at every commit; one 4 KiB write + fsync in "
        f"{tempfile.gettempdir()} takes {disk:.2f} ms on this disk)",
    )
    results += postgres_writes()
    return results


def postgres_writes() -> list[Result]:
    """Write latency on a throwaway PostgreSQL 15 cluster."""
    from tests.pg_cluster import find_pg_bin

    if find_pg_bin() is None:
        return [
            figure(
                "Write latency, PostgreSQL",
                math.nan,
                "ms",
                notes="PostgreSQL server binaries not found (see tests/pg_cluster.py): "
                "not measured",
            )
        ]
    with postgres_server() as (server, settings):
        creates, updates = trio.run(write_latencies, server.port, WRITES, WRITE_WARMUP)
    fsync, sync_commit, version = [*settings, "?", "?", "?"][:3]
    return _write_results(
        "PostgreSQL",
        creates,
        updates,
        f"PostgreSQL {version} over TCP on 127.0.0.1, fsync={fsync}, "
        f"synchronous_commit={sync_commit} (server defaults)",
    )


# -- 3. fan-out ---------------------------------------------------------------------------


def bench_fanout() -> list[Result]:
    """Benchmark 3: one write to 1,000 subscribers, until the last one has it.

    Run twice: with lean subscribers (plain sockets and the sans-IO ADDP
    connection in one epoll loop per process, about as cheap as a Python
    client gets, so the figure is mostly the server's), and with the real
    client library (``open_client``, trio), which shows what this 2-core
    machine does when the clients share it with the server.
    """
    print(
        f"[3] fan-out: {SUBSCRIBERS:,} subscribers in {SUBSCRIBER_PROCESSES} processes, "
        f"{FANOUT_WRITES} writes {FANOUT_GAP * 1000:.0f} ms apart; lean subscribers, then "
        "client-library subscribers",
        flush=True,
    )
    raise_open_file_limit(SUBSCRIBERS + 512)  # the server inherits it
    return [
        fanout_run("lean-subscribe-worker", "lean subscribers", LEAN_FANOUT_TARGET_MS),
        fanout_run("subscribe-worker", "client-library subscribers", FANOUT_TARGET_MS),
        fanout_floor(),
    ]


def floor_frame() -> bytes:
    """An ADDP frame of the size of the fan-out's notifications (an options change)."""
    change = {
        "serial": 123,
        "epoch": 3,
        "op": "change",
        "type": "Host",
        "dbid": 105,
        "data": {"delta": {}, "options": {"bench": {"n": "17"}}},
        "time": time.time(),
    }
    return encode_frame(FrameKind.MESSAGE, encode_payload({"notify": change}))


def fanout_floor(shape: FanoutShape | None = None) -> Result:
    """The machine's floor under benchmark 3: this process writes one frame of a
    notification's size to each of the subscribers' sockets (``os.write`` in a loop:
    no server, no protocol), read and thrown away by ``sink-worker`` processes."""
    shape = shape or fanout_shape()
    each = shape.subscribers // shape.processes
    frame = floor_frame()
    with socket.create_server(("127.0.0.1", 0), backlog=shape.subscribers) as listener:
        port = listener.getsockname()[1]
        args = [["sink-worker", str(port), str(each)] for _ in range(shape.processes)]
        with workers(args) as started:
            accepted = [listener.accept()[0] for _ in range(each * shape.processes)]
            try:
                for one in started:
                    one.expect("READY")
                sends: list[tuple[float, float]] = []
                fds = [sock.fileno() for sock in accepted]
                for _ in range(shape.writes):
                    time.sleep(shape.gap)
                    sent = time.monotonic()
                    for fd in fds:
                        os.write(fd, frame)
                    sends.append((sent, time.monotonic()))
                time.sleep(0.5)
                for one in started:
                    one.tell("STOP")
                reports = [json.loads(one.line()) for one in started]
            finally:
                for sock in accepted:
                    sock.close()
    reads = sorted(t for r in reports for t in r["reads"])
    lasts: list[float] = []
    loops: list[float] = []
    for sent, done in sends:
        burst = [t for t in reads if sent <= t < sent + shape.gap]
        if burst:
            lasts.append((max(burst) - sent) * 1000)
        loops.append((done - sent) * 1000)
    return figure(
        f"Fan-out floor: {each * shape.processes:,} bare writes, p99 until the last reader has it",
        percentile(lasts, 99),
        "ms",
        notes=(
            f"{shape.writes} rounds {shape.gap * 1000:.0f} ms apart: this process writes one "
            f"{len(frame)}-byte frame (a notification's size) to each of "
            f"{each * shape.processes:,} loopback TCP sockets with os.write in a loop, read and "
            f"thrown away by {shape.processes} processes waiting in epoll ({each} each): no "
            f"server, no protocol, no decoding. Median {median(lasts):.1f} ms until the last "
            f"read; the write loop alone median {median(loops):.1f} ms, p99 "
            f"{percentile(loops, 99):.1f} ms. A single-threaded server cannot notify faster "
            "than this loop on this machine"
        ),
        precision=1,
    )


@dataclass(frozen=True)
class FanoutShape:
    """How many subscribers, in how many processes, get how many writes how far apart."""

    subscribers: int
    processes: int
    writes: int
    gap: float


def fanout_shape() -> FanoutShape:
    """This module's fan-out settings as they stand (``--quick`` lowers them)."""
    return FanoutShape(SUBSCRIBERS, SUBSCRIBER_PROCESSES, FANOUT_WRITES, FANOUT_GAP)


def fanout_run(
    worker: str, label: str, target_ms: float, shape: FanoutShape | None = None
) -> Result:
    """One fan-out run: ``shape``'s subscribers (this module's by default) held by
    ``worker`` processes, p99 against ``target_ms``."""
    shape = shape or fanout_shape()
    each = shape.subscribers // shape.processes
    with (
        tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp,
        sqlite_server(Path(tmp), "fanout") as server,
    ):
        args = [[worker, str(server.port), str(each), f"s{i}-"] for i in range(shape.processes)]
        opened = time.perf_counter()
        with workers(args) as started:
            try:
                for one in started:
                    one.expect("READY")
            except RuntimeError as exc:
                tail = "\n".join(server.log_text().splitlines()[-20:])
                raise RuntimeError(f"{exc}\nlast lines of the server's log:\n{tail}") from exc
            opened = time.perf_counter() - opened
            window = CpuWindow({"server": server.pid, "mine": None})
            wall = time.perf_counter()
            writes = trio.run(fanout_writes, server.port, shape.writes, shape.gap)
            wall = time.perf_counter() - wall
            used = window.seconds()
            server_cpu, machine, mine = used["server"], used["machine"], used["mine"]
            time.sleep(0.5)  # let late notifications arrive
            for one in started:
                one.tell("STOP")
            reports = [json.loads(one.line()) for one in started]
    latencies: list[float] = []
    firsts: list[float] = []
    acks: list[float] = []
    missing = 0
    for serial, sent, answered in writes:
        entries = [e for r in reports if (e := r["seen"].get(str(serial)))]
        got = sum(e[0] for e in entries)
        missing += shape.subscribers - got
        if entries:
            latencies.append((max(e[2] for e in entries) - sent) * 1000)
            firsts.append((min(e[1] for e in entries) - sent) * 1000)
        acks.append((answered - sent) * 1000)

    def per_write(cpu: float) -> float:
        return cpu / len(writes) * 1000

    worker_cpu = " + ".join(f"{per_write(r['cpu']):.0f}" for r in reports)
    # The CPU one write costs every process together, spread over every core: no
    # schedule of this machine has the last subscriber done sooner, on average.
    cores = os.cpu_count() or 1
    bound = per_write(server_cpu + sum(r["cpu"] for r in reports)) / cores
    p99 = percentile(latencies, 99)
    mid = median(latencies)
    complete = missing == 0
    others = max(0.0, machine - server_cpu - mine - sum(r["cpu"] for r in reports))
    how = (
        f"{len(writes)} updates of one Host (options change) {shape.gap * 1000:.0f} ms apart, "
        f"{shape.subscribers:,} {label} of Host, each on its own TCP connection, {each} per worker "
        f"process; from sending the update until the last subscriber has decoded the "
        f"notification (time.monotonic, one clock for all processes); median {mid:.1f} ms, "
        f"max {max(latencies, default=math.nan):.1f} ms; first subscriber after median "
        f"{median(firsts):.1f} ms; the writer's own answer "
        f"after median {median(acks):.1f} ms; CPU per write: server "
        f"{per_write(server_cpu):.0f} ms, subscriber processes {worker_cpu} ms, together "
        f"{bound:.1f} ms for each of {cores} cores (the least wall time this machine can "
        f"give on average); subscribers connected, registered and subscribed in "
        f"{opened:.1f} s, then each worker froze its garbage collector (gc.freeze(), as "
        f"confserv does once loaded); other processes used "
        f"{others / wall * 100:.0f}% of one core during the writes"
    )
    if not complete:
        how += f"; {missing:,} notifications NEVER ARRIVED"
    if others / wall * 100 >= 20:
        how += "; OTHER PROCESSES TOOK CPU: this figure is high"
    return figure(
        f"Fan-out to {shape.subscribers:,} {label}, p99 until the last has it",
        p99,
        "ms",
        f"<= {target_ms:g} ms",
        complete and p99 <= target_ms,
        how,
        precision=1,
    )


# -- 4. start-up --------------------------------------------------------------------------


def bench_startup() -> list[Result]:
    """Benchmark 4: start-up with 100,000 objects until the server serves."""
    print(
        f"[4] start-up with {STARTUP_OBJECTS:,} objects in SQLite, {STARTUP_RUNS} runs", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp:
        directory = Path(tmp)
        port = free_port()
        dbfile = directory / "big.sqlite"
        config = write_config(directory, engine="sqlite", dbname=str(dbfile), port=port)
        init_database_sync(config)
        filled = time.perf_counter()
        total = fill_database(dbfile, STARTUP_OBJECTS)
        filled = time.perf_counter() - filled
        runs: list[dict[str, float]] = []
        for run in range(STARTUP_RUNS):
            with confserv_process(
                config, port, directory / f"start{run}.log", wait=False
            ) as server:
                spawned = server.started_at
                listening, served = trio.run(first_read, server, spawned + STARTUP_DEADLINE)
                own = loaded(server)
                runs.append(
                    {
                        "serve": served - spawned,
                        "listen": listening - spawned,
                        "loaded": own[2] if own else math.nan,
                        "count": own[0] if own else math.nan,
                        "rss": rss_kib(server.pid) / 1024,
                    }
                )
    serve = median(r["serve"] for r in runs)
    serves = ", ".join(f"{r['serve']:.2f}" for r in runs)
    load = median(r["loaded"] for r in runs)
    listen = median(r["listen"] for r in runs)
    rss = median(r["rss"] for r in runs)
    return [
        figure(
            f"Start-up with {STARTUP_OBJECTS:,} objects until a client read is answered",
            serve,
            "s",
            f"<= {STARTUP_TARGET:g} s",
            serve <= STARTUP_TARGET,
            f"median of {STARTUP_RUNS} runs ({serves} s): from spawning the confserv process "
            f"until a client has connected, registered (one scrypt check) and had its read "
            f"answered, polling every 10 ms; the client port accepted connections after "
            f"{listen:.2f} s (median); {total:,} objects in the file, filled with sqlite3 "
            f"in {filled:.1f} s",
            precision=2,
        ),
        figure(
            "Start-up: server's own load time (event 20003)",
            load,
            "s",
            notes=f"'Loaded {int(runs[0]['count']):,} objects ... in X s' from the server's log "
            "(SELECT of every row, JSON decode, indexes), median of the runs; the rest of "
            "the start-up is the interpreter and imports, schema check, lease and listen",
            precision=2,
        ),
        figure(
            f"Server RSS after loading {STARTUP_OBJECTS:,} objects",
            rss,
            "MiB",
            notes="VmRSS from /proc/<pid>/status right after the first read was answered, median",
            precision=0,
        ),
    ]


BENCHMARKS: dict[str, Benchmark] = {
    "reads": bench_reads,
    "writes": bench_writes,
    "fanout": bench_fanout,
    "startup": bench_startup,
}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
