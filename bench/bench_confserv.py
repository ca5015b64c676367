"""Configuration Server: read rate, write latency, fan-out to 1,000 subscribers, start-up.

Every server is a separate ``confserv`` process (the console script on a
generated ``confserv.conf``, database prepared as ``cfgctl init`` does); the
clients are :func:`confserv.client.session.open_client` clients (the real client
library) in this process or in worker processes started from this module
(``python -m bench.bench_confserv read-worker|subscribe-worker ...``).
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
server when the clients compete with it for this machine's 2 cores.

(4) Start-up with 100,000 objects: a SQLite database filled directly with
``sqlite3`` (rows as ``commit_plan`` writes them, counters raised to match,
bootstrap objects from ``cfgctl init``), then the time from spawning
``confserv`` until a client has registered and its first read is answered.
The server's own "Loaded N objects in X s" (event 20003) and its resident
memory after loading are shown beside it. Run alone with
``.venv/bin/python -m bench.bench_confserv``."""

from __future__ import annotations

import json
import math
import os
import select
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addp import AddpOptions, Connection, ConnectionClosed, HandshakeComplete, Message  # noqa: E402
from bench._report import Result, report  # noqa: E402
from bench._servers import (  # noqa: E402
    ADMIN_PASSWORD,
    HOST,
    ServerProcess,
    confserv_process,
    free_port,
    fsync_ms,
    init_database_sync,
    machine_cpu,
    raise_open_file_limit,
    self_cpu,
    stop_process,
    write_config,
)
from confserv.client.session import ConfigClient, open_client  # noqa: E402
from confserv.wire.errors import ConfServError  # noqa: E402

#: Time allowed for a worker process to answer (connect its clients, report).
WORKER_TIMEOUT = 120.0
#: Time a worker gets to exit by itself once its stdin is closed, before SIGTERM.
WORKER_EXIT_GRACE = 5.0
#: Clients opened at once (keeps the listen backlog and the server's accept loop calm).
OPEN_CONCURRENCY = 50

#: Target of benchmark 1, reads per second.
READ_TARGET = 20_000
#: Seconds of each timed read window (after every client has done one warm-up read).
READ_SECONDS = 4.0
#: Concurrent clients of the multi-client runs.
READ_CLIENTS = 32
#: Worker processes of the split run.
READ_PROCESSES = 2
#: Hosts created before the read runs; reads cycle over their dbids.
READ_OBJECTS = 100
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
#: Target of benchmark 3: p99 of the time until the last subscriber has a change.
FANOUT_TARGET_MS = 50.0

#: Objects in the database of benchmark 4, and the start-up target.
STARTUP_OBJECTS = 100_000
STARTUP_TARGET = 3.0
STARTUP_RUNS = 3
#: Deadline for the server to serve after being spawned.
STARTUP_DEADLINE = 60.0


# -- helpers ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def client(port: int, name: str) -> Any:
    """``open_client`` to the benchmarked server as the administrator."""
    return open_client([(HOST, port)], app=name, user="default", password=ADMIN_PASSWORD)


async def warm_auth(port: int) -> None:
    """Register one client and leave, so that the server has the password check cached.

    The server caches a successful scrypt check only after it finishes, so
    clients registering at once before that each pay for one (see the report).
    """
    async with client(port, "bench-warm"):
        pass


async def hold_clients(
    port: int,
    count: int,
    prefix: str,
    body: Callable[[int, ConfigClient], Awaitable[None]],
    ready: Callable[[int, ConfigClient], Awaitable[None]] | None = None,
) -> None:
    """Run ``count`` clients, one task each: open, ``ready``, then ``body`` until it returns.

    At most :data:`OPEN_CONCURRENCY` clients connect and register at once.
    """
    limiter = trio.CapacityLimiter(OPEN_CONCURRENCY)

    async def one(index: int) -> None:
        async with AsyncExitStack() as stack:
            async with limiter:
                c = await stack.enter_async_context(client(port, f"{prefix}{index}"))
                if ready is not None:
                    await ready(index, c)
            await body(index, c)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)


class Worker:
    """A worker process of this module speaking line by line on its stdin/stdout."""

    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_confserv", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        self._buffer = b""

    def line(self, timeout: float = WORKER_TIMEOUT) -> str:
        """The next line the worker prints (RuntimeError if it exits or times out)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"worker {self.proc.args} said nothing for {timeout:g} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(
                        f"worker exited ({self.proc.poll()}) before answering: {self._buffer!r}"
                    )
                self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\n")
        return text.decode()

    def expect(self, word: str) -> None:
        """Wait for the line ``word``."""
        got = self.line()
        if got != word:
            raise RuntimeError(f"worker said {got!r}, expected {word!r}")

    def tell(self, word: str) -> None:
        """Send one line to the worker."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word}\n".encode())
        self.proc.stdin.flush()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """Close its stdin and stop it (SIGTERM, then SIGKILL)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with suppress(OSError):
                self.proc.stdin.close()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(WORKER_EXIT_GRACE)  # it exits by itself at the end of its stdin
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def workers(args: Sequence[Sequence[str]]) -> Iterator[list[Worker]]:
    """Start one worker per argument list; stop them all on exit."""
    with ExitStack() as stack:
        started: list[Worker] = []
        for one in args:
            worker = Worker(one)
            stack.callback(worker.stop)
            started.append(worker)
        yield started


async def wait_for_line() -> str:
    """In a worker: the next line from stdin (read in a thread)."""
    return await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


@contextmanager
def sqlite_server(directory: Path, name: str) -> Iterator[ServerProcess]:
    """A bootstrapped SQLite database in ``directory`` and a ``confserv`` on it."""
    port = free_port()
    config = write_config(
        directory, engine="sqlite", dbname=str(directory / f"{name}.sqlite"), port=port
    )
    init_database_sync(config)
    with confserv_process(config, port, directory / f"{name}.log") as server:
        yield server


# -- 1. reads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadRun:
    """What one process's read clients did in the timed window."""

    count: int
    wall: float
    cpu: float


async def read_load(
    port: int, clients: int, seconds: float, go: Callable[[], Awaitable[None]], prefix: str
) -> LoadRun:
    """Open ``clients`` clients, one warm-up read each, ``await go()``, then read for ``seconds``.

    Each client sends one read, waits for its answer, sends the next, cycling
    over the dbids 1 to :data:`READ_OBJECTS` + 1 of the Hosts.
    """
    counts = [0] * clients
    opened = 0
    all_ready, start = trio.Event(), trio.Event()
    deadline = math.inf

    async def ready(index: int, c: ConfigClient) -> None:
        nonlocal opened
        if not await c.read("Host", {"dbid": 1}):
            raise RuntimeError("warm-up read found no Host 1")
        opened += 1
        if opened == clients:
            all_ready.set()

    async def body(index: int, c: ConfigClient) -> None:
        await start.wait()
        n = 0
        dbid = index % (READ_OBJECTS + 1) + 1
        while trio.current_time() < deadline:
            await c.read("Host", {"dbid": dbid})
            n += 1
            dbid = dbid % (READ_OBJECTS + 1) + 1
        counts[index] = n

    await warm_auth(port)
    cpu = wall = 0.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold_clients, port, clients, prefix, body, ready)
        await all_ready.wait()
        await go()
        cpu, wall = self_cpu(), time.perf_counter()
        deadline = trio.current_time() + seconds
        start.set()
    wall, cpu = time.perf_counter() - wall, self_cpu() - cpu
    return LoadRun(sum(counts), wall, cpu)


def read_worker(port: int, clients: int, seconds: float, prefix: str) -> None:
    """Worker: ``read_load`` with READY/GO on stdout/stdin; prints the run as JSON."""

    async def go() -> None:
        print("READY", flush=True)
        if (await wait_for_line()).strip() != "GO":
            raise SystemExit("expected GO")

    run = trio.run(read_load, port, clients, seconds, go, prefix)
    print(json.dumps({"count": run.count, "wall": run.wall, "cpu": run.cpu}), flush=True)


async def create_hosts(port: int, count: int) -> None:
    """Create ``count`` Hosts ``bench-host-<i>`` through one client."""
    async with client(port, "bench-setup") as c:
        tenant = (await c.read("Tenant"))[0]["dbid"]
        for i in range(count):
            await c.create(
                "Host",
                {"name": f"bench-host-{i}", "ip_address": "127.0.0.1", "tenant_dbid": tenant},
            )


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
            marks: dict[str, float] = {}

            async def go(marks: dict[str, float] = marks) -> None:
                marks["server"], marks["machine"] = server.cpu(), machine_cpu()

            run = trio.run(read_load, server.port, clients, READ_SECONDS, go, f"r{clients}-")
            server_cpu = server.cpu() - marks["server"]
            machine = machine_cpu() - marks["machine"]
            rate = run.count / run.wall
            results.append(
                report(
                    Result(
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
            )
        results.append(read_in_processes(server))
    return results


def read_in_processes(server: ServerProcess) -> Result:
    """32 read clients split over :data:`READ_PROCESSES` worker processes."""
    each = READ_CLIENTS // READ_PROCESSES
    args = [
        ["read-worker", str(server.port), str(each), str(READ_SECONDS), f"w{i}-"]
        for i in range(READ_PROCESSES)
    ]
    with workers(args) as started:
        for worker in started:
            worker.expect("READY")
        server_cpu, machine = server.cpu(), machine_cpu()
        wall = time.perf_counter()
        for worker in started:
            worker.tell("GO")
        runs = [LoadRun(**json.loads(worker.line())) for worker in started]
        wall = time.perf_counter() - wall
        server_cpu, machine = server.cpu() - server_cpu, machine_cpu() - machine
    count = sum(r.count for r in runs)
    rate = sum(r.count / r.wall for r in runs)
    cpus = [(f"worker {i + 1}", r.cpu * wall / r.wall) for i, r in enumerate(runs)]
    return report(
        Result(
            f"Reads by dbid/s, {READ_CLIENTS} clients in {READ_PROCESSES} processes",
            rate,
            "req/s",
            f">= {READ_TARGET:,} req/s",
            rate >= READ_TARGET,
            f"{count:,} reads, {each} clients per worker process, one in flight per client; "
            + _cpu_note(server_cpu, wall, count, cpus, machine),
        )
    )


# -- 2. write latency ---------------------------------------------------------------------


async def write_latencies(port: int, count: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds per create and per update, one at a time, after ``warmup`` writes."""
    creates: list[float] = []
    updates: list[float] = []
    async with client(port, "bench-writer") as c:
        tenant = (await c.read("Tenant"))[0]["dbid"]
        for i in range(warmup):
            await c.create("Host", {"name": f"warm-{i}", "tenant_dbid": tenant})
        dbids: list[int] = []
        for i in range(count // 2):
            obj = {"name": f"w-{i}", "ip_address": "10.0.0.1", "tenant_dbid": tenant}
            start = time.perf_counter()
            answer = await c.create("Host", obj)
            creates.append(time.perf_counter() - start)
            dbids.append(int(answer["dbid"]))
        for i, dbid in enumerate(dbids):
            start = time.perf_counter()
            await c.update("Host", dbid, {"lca_port": 5000 + i}, {"bench": {"n": str(i)}})
            updates.append(time.perf_counter() - start)
    return creates, updates


def _write_results(
    engine: str, creates: list[float], updates: list[float], how: str
) -> list[Result]:
    both = creates + updates
    ms = [x * 1000 for x in both]
    detail = (
        f"{len(creates)} creates then {len(updates)} updates of Hosts, one at a time, from "
        f"sending to the answer; creates median {statistics.median(creates) * 1000:.2f} ms, "
        f"updates median {statistics.median(updates) * 1000:.2f} ms, max {max(ms):.2f} ms; {how}"
    )
    return [
        report(
            Result(
                f"Write latency, median, {engine}",
                statistics.median(ms),
                "ms",
                "",
                None,
                detail,
                precision=2,
            )
        ),
        report(
            Result(
                f"Write latency, p99, {engine}",
                percentile(ms, 99),
                "ms",
                "",
                None,
                f"nearest rank over {len(ms)} writes; same run as the median",
                precision=2,
            )
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
    from tests.pg_cluster import find_pg_bin, running_cluster

    if find_pg_bin() is None:
        return [
            report(
                Result(
                    "Write latency, PostgreSQL",
                    math.nan,
                    "ms",
                    "",
                    None,
                    "PostgreSQL server binaries not found (see tests/pg_cluster.py): not measured",
                )
            )
        ]
    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp:
        settings = cluster.psql(
            "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit') "
            "|| ' ' || current_setting('server_version');"
        ).split()
        port = free_port()
        config = write_config(
            Path(tmp),
            engine="postgre",
            dbname=cluster.create_database(),
            port=port,
            db_host=cluster.host,
            db_port=cluster.port,
            username=cluster.user,
            password=cluster.password,
        )
        init_database_sync(config)
        with confserv_process(config, port, Path(tmp) / "pg.log") as server:
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


def subscribe_worker(port: int, clients: int, prefix: str) -> None:
    """Worker: ``clients`` subscribers of Host; on STOP prints per-serial receive times.

    For every serial: how many subscribers got it, and the first and last
    ``time.monotonic()`` at which the client library handed it over.
    """
    raise_open_file_limit(clients + 256)

    async def main() -> None:
        seen: dict[int, list[float]] = {}  # serial -> [count, first, last]
        subscribed = 0
        all_ready = trio.Event()

        async def ready(index: int, c: ConfigClient) -> None:
            nonlocal subscribed
            await c.subscribe("Host")
            subscribed += 1
            if subscribed == clients:
                all_ready.set()

        async def listen(index: int, c: ConfigClient) -> None:
            while True:
                change = await c.notification()
                now = time.monotonic()
                entry = seen.get(change["serial"])
                if entry is None:
                    seen[change["serial"]] = [1, now, now]
                else:
                    entry[0] += 1
                    entry[2] = max(entry[2], now)

        opened = time.perf_counter()
        await warm_auth(port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_clients, port, clients, prefix, listen, ready)
            await all_ready.wait()
            opened = time.perf_counter() - opened
            cpu = self_cpu()
            print("READY", flush=True)
            await wait_for_line()
            cpu = self_cpu() - cpu
            nursery.cancel_scope.cancel()
        print(json.dumps({"seen": seen, "cpu": cpu, "opened": opened}), flush=True)

    trio.run(main)


def lean_subscriber(port: int, name: str) -> tuple[socket.socket, Connection]:
    """A subscriber of Host on a plain blocking socket and the sans-IO ADDP connection.

    Handshake, ``register`` and ``subscribe`` as :mod:`confserv.client.session` sends
    them; returns the socket (now non-blocking) and its connection.
    """
    sock = socket.create_connection((HOST, port), timeout=WORKER_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(AddpOptions(), now=time.monotonic())
    conn.start(time.monotonic())
    sock.sendall(conn.data_to_send())
    pending: list[Any] = []
    opened = False

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        nonlocal opened
        if request:
            conn.send(request, time.monotonic())
            sock.sendall(conn.data_to_send())
        while True:
            while pending:
                message = pending.pop(0)
                if not request or (
                    isinstance(message, dict) and message.get("re") == request["id"]
                ):
                    return dict(message) if isinstance(message, dict) else {}
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"{name}: the server closed the connection")
            for event in conn.receive_data(data, time.monotonic()):
                if isinstance(event, HandshakeComplete):
                    opened = True
                    if not request:
                        return {}
                elif isinstance(event, Message):
                    pending.append(event.payload)
                elif isinstance(event, ConnectionClosed):
                    raise RuntimeError(f"{name}: closed by the server: {event.reason}")
            out = conn.data_to_send()
            if out:
                sock.sendall(out)

    answer({})  # the handshake
    for request in (
        {
            "op": "register",
            "id": 1,
            "app": name,
            "app_type": "client",
            "user": "default",
            "password": ADMIN_PASSWORD,
            "daemon": False,
        },
        {"op": "subscribe", "id": 2, "type": "Host"},
    ):
        got = answer(request)
        if not got.get("ok"):
            raise RuntimeError(f"{name}: {request['op']} refused: {got}")
    sock.setblocking(False)
    return sock, conn


def lean_subscribe_worker(port: int, clients: int, prefix: str) -> None:
    """Worker: ``clients`` lean subscribers (plain sockets, one epoll loop, no trio).

    Prints READY once all are subscribed; records when each notification's
    bytes are decoded; on STOP (stdin) prints the same JSON as
    :func:`subscribe_worker`.
    """
    raise_open_file_limit(clients + 256)
    opened = time.perf_counter()
    subscribers = {}
    for index in range(clients):
        sock, conn = lean_subscriber(port, f"{prefix}{index}")
        subscribers[sock.fileno()] = (sock, conn)
    opened = time.perf_counter() - opened
    seen: dict[int, list[float]] = {}
    poller = select.epoll()
    for fd in subscribers:
        poller.register(fd, select.EPOLLIN)
    stdin = sys.stdin.fileno()
    poller.register(stdin, select.EPOLLIN)
    cpu = self_cpu()
    print("READY", flush=True)
    running = True
    try:
        while running:
            for fd, _ in poller.poll(1.0):
                if fd == stdin:
                    running = False
                    continue
                sock, conn = subscribers[fd]
                data = sock.recv(65536)
                now = time.monotonic()
                if not data:
                    poller.unregister(fd)
                    continue
                for event in conn.receive_data(data, now):
                    if not isinstance(event, Message) or not isinstance(event.payload, dict):
                        continue
                    change = event.payload.get("notify")
                    if not isinstance(change, dict):
                        continue
                    entry = seen.get(change["serial"])
                    if entry is None:
                        seen[change["serial"]] = [1, now, now]
                    else:
                        entry[0] += 1
                        entry[2] = now
        cpu = self_cpu() - cpu
    finally:
        poller.close()
        for sock, _ in subscribers.values():
            sock.close()
    print(json.dumps({"seen": seen, "cpu": cpu, "opened": opened}), flush=True)


async def fanout_writes(port: int, writes: int, gap: float) -> list[tuple[int, float, float]]:
    """``writes`` updates of one Host ``gap`` s apart: (serial, sent, answered) monotonic."""
    out: list[tuple[int, float, float]] = []
    async with client(port, "bench-fanout-writer") as c:
        tenant = (await c.read("Tenant"))[0]["dbid"]
        dbid = int((await c.create("Host", {"name": "fanout", "tenant_dbid": tenant}))["dbid"])
        await trio.sleep(gap)
        for i in range(writes):
            sent = time.monotonic()
            answer = await c.update("Host", dbid, {}, {"bench": {"n": str(i)}})
            out.append((int(answer["serial"]), sent, time.monotonic()))
            await trio.sleep(gap)
    return out


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
        fanout_run("lean-subscribe-worker", "lean subscribers"),
        fanout_run("subscribe-worker", "client-library subscribers"),
    ]


def fanout_run(worker: str, label: str) -> Result:
    """One fan-out run with :data:`SUBSCRIBERS` subscribers held by ``worker`` processes."""
    each = SUBSCRIBERS // SUBSCRIBER_PROCESSES
    with (
        tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp,
        sqlite_server(Path(tmp), "fanout") as server,
    ):
        args = [
            [worker, str(server.port), str(each), f"s{i}-"] for i in range(SUBSCRIBER_PROCESSES)
        ]
        opened = time.perf_counter()
        with workers(args) as started:
            try:
                for one in started:
                    one.expect("READY")
            except RuntimeError as exc:
                tail = "\n".join(server.log_text().splitlines()[-20:])
                raise RuntimeError(f"{exc}\nlast lines of the server's log:\n{tail}") from exc
            opened = time.perf_counter() - opened
            server_cpu, machine, mine = server.cpu(), machine_cpu(), self_cpu()
            wall = time.perf_counter()
            writes = trio.run(fanout_writes, server.port, FANOUT_WRITES, FANOUT_GAP)
            wall = time.perf_counter() - wall
            server_cpu, machine = server.cpu() - server_cpu, machine_cpu() - machine
            mine = self_cpu() - mine
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
        missing += SUBSCRIBERS - got
        if entries:
            latencies.append((max(e[2] for e in entries) - sent) * 1000)
            firsts.append((min(e[1] for e in entries) - sent) * 1000)
        acks.append((answered - sent) * 1000)

    def per_write(cpu: float) -> float:
        return cpu / len(writes) * 1000

    worker_cpu = " + ".join(f"{per_write(r['cpu']):.0f}" for r in reports)
    p99 = percentile(latencies, 99) if latencies else math.nan
    median = statistics.median(latencies) if latencies else math.nan
    complete = missing == 0
    others = max(0.0, machine - server_cpu - mine - sum(r["cpu"] for r in reports))
    how = (
        f"{len(writes)} updates of one Host (options change) {FANOUT_GAP * 1000:.0f} ms apart, "
        f"{SUBSCRIBERS:,} {label} of Host, each on its own TCP connection, {each} per worker "
        f"process; from sending the update until the last subscriber has decoded the "
        f"notification (time.monotonic, one clock for all processes); median {median:.1f} ms, "
        f"max {max(latencies, default=math.nan):.1f} ms; first subscriber after median "
        f"{statistics.median(firsts) if firsts else math.nan:.1f} ms; the writer's own answer "
        f"after median {statistics.median(acks):.1f} ms; CPU per write: server "
        f"{per_write(server_cpu):.0f} ms, subscriber processes {worker_cpu} ms; subscribers "
        f"connected, registered and subscribed in {opened:.1f} s; other processes used "
        f"{others / wall * 100:.0f}% of one core during the writes"
    )
    if not complete:
        how += f"; {missing:,} notifications NEVER ARRIVED"
    if others / wall * 100 >= 20:
        how += "; OTHER PROCESSES TOOK CPU: this figure is high"
    return report(
        Result(
            f"Fan-out to {SUBSCRIBERS:,} {label}, p99 until the last has it",
            p99,
            "ms",
            f"<= {FANOUT_TARGET_MS:g} ms",
            complete and p99 <= FANOUT_TARGET_MS,
            how,
            precision=1,
        )
    )


# -- 4. start-up --------------------------------------------------------------------------


def _object_rows(tenant: int, first_dbid: dict[str, int]) -> Iterator[tuple[str, int, str, str]]:
    """Rows ``(type, dbid, name, data)`` of the :data:`STARTUP_OBJECTS` bulk objects.

    One Switch, 90% DNs on it (with an options section), the rest Persons and
    Hosts; every object as :func:`confserv.model.objects.new_object` makes it.
    """
    from confserv.model.objects import new_object

    def dump(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)

    switch_dbid = first_dbid["Switch"]
    switch = new_object("Switch", {"name": "bench-switch", "tenant_dbid": tenant})
    switch["dbid"] = switch_dbid
    yield ("Switch", switch_dbid, switch["name"], dump(switch))
    left = STARTUP_OBJECTS - 1
    dns, persons = left * 9 // 10, left // 20
    hosts = left - dns - persons
    dn = new_object(
        "DN",
        {
            "name": "dn",
            "number": "0",
            "tenant_dbid": tenant,
            "switch_dbid": switch_dbid,
            "options": {"TServer": {"dn-type": "extension", "use-override": "false"}},
        },
    )
    for i in range(dns):
        dbid = first_dbid["DN"] + i
        obj = {**dn, "dbid": dbid, "name": f"dn-{70000 + i}", "number": str(70000 + i)}
        yield ("DN", dbid, obj["name"], dump(obj))
    person = new_object("Person", {"name": "p", "user_name": "p", "tenant_dbid": tenant})
    for i in range(persons):
        dbid = first_dbid["Person"] + i
        obj = {**person, "dbid": dbid, "name": f"agent-{i}", "user_name": f"agent-{i}"}
        yield ("Person", dbid, obj["name"], dump(obj))
    host = new_object("Host", {"name": "h", "ip_address": "10.0.0.1", "tenant_dbid": tenant})
    for i in range(hosts):
        dbid = first_dbid["Host"] + i
        obj = {
            **host,
            "dbid": dbid,
            "name": f"host-{i}",
            "ip_address": f"10.1.{i // 250}.{i % 250}",
        }
        yield ("Host", dbid, obj["name"], dump(obj))


def fill_database(path: Path) -> int:
    """Add :data:`STARTUP_OBJECTS` objects to the bootstrapped SQLite file; the total count."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        tenant = conn.execute("SELECT dbid FROM cfg_object WHERE type = 'Tenant'").fetchone()[0]
        last = {
            name.removeprefix("dbid:"): int(value)
            for name, value in conn.execute(
                "SELECT name, value FROM cfg_counter WHERE name LIKE 'dbid:%'"
            )
        }
        first = {kind: value + 1 for kind, value in last.items()}
        highest = dict(last)
        rows = []
        for row in _object_rows(int(tenant), first):
            rows.append(row)
            highest[row[0]] = max(highest[row[0]], row[1])
        conn.executemany(
            "INSERT INTO cfg_object (type, dbid, name, data) VALUES (?, ?, ?, ?)", rows
        )
        conn.executemany(
            "UPDATE cfg_counter SET value = ? WHERE name = ?",
            [(value, f"dbid:{kind}") for kind, value in highest.items()],
        )
        conn.execute("COMMIT")
        total: int = conn.execute("SELECT COUNT(*) FROM cfg_object").fetchone()[0]
    finally:
        conn.close()
    return total


async def first_read(server: ServerProcess, deadline: float) -> tuple[float, float]:
    """Poll (every 10 ms) until a client of ``server`` registers and has a read answered.

    Returns ``time.perf_counter()`` of when the port first accepted a TCP
    connection and of when the first read was answered. Raises RuntimeError
    when the server exits or ``deadline`` (``perf_counter``) passes.
    """
    port = server.port
    listening = math.nan
    while True:
        server.check_alive()
        if time.perf_counter() > deadline:
            raise RuntimeError("the server did not serve before the deadline")
        try:
            stream = await trio.open_tcp_stream(HOST, port)
        except OSError:
            await trio.sleep(0.01)
            continue
        await stream.aclose()
        if math.isnan(listening):
            listening = time.perf_counter()
        try:
            async with client(port, "bench-startup") as c:
                got = await c.read("Host", {"dbid": 1})
                if got:
                    return listening, time.perf_counter()
        except (OSError, ConfServError):
            await trio.sleep(0.01)


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
        total = fill_database(dbfile)
        filled = time.perf_counter() - filled
        runs: list[dict[str, float]] = []
        for run in range(STARTUP_RUNS):
            with confserv_process(
                config, port, directory / f"start{run}.log", wait=False
            ) as server:
                listening, served = trio.run(first_read, server, server.spawned + STARTUP_DEADLINE)
                loaded = server.loaded()
                runs.append(
                    {
                        "serve": served - server.spawned,
                        "listen": listening - server.spawned,
                        "loaded": loaded[2] if loaded else math.nan,
                        "count": loaded[0] if loaded else math.nan,
                        "rss": server.rss_kib() / 1024,
                    }
                )
    median = statistics.median(r["serve"] for r in runs)
    serves = ", ".join(f"{r['serve']:.2f}" for r in runs)
    loaded = statistics.median(r["loaded"] for r in runs)
    listen = statistics.median(r["listen"] for r in runs)
    rss = statistics.median(r["rss"] for r in runs)
    return [
        report(
            Result(
                f"Start-up with {STARTUP_OBJECTS:,} objects until a client read is answered",
                median,
                "s",
                f"<= {STARTUP_TARGET:g} s",
                median <= STARTUP_TARGET,
                f"median of {STARTUP_RUNS} runs ({serves} s): from spawning the confserv process "
                f"until a client has connected, registered (one scrypt check) and had its read "
                f"answered, polling every 10 ms; the client port accepted connections after "
                f"{listen:.2f} s (median); {total:,} objects in the file, filled with sqlite3 "
                f"in {filled:.1f} s",
                precision=2,
            )
        ),
        report(
            Result(
                "Start-up: server's own load time (event 20003)",
                loaded,
                "s",
                "",
                None,
                f"'Loaded {int(runs[0]['count']):,} objects ... in X s' from the server's log "
                "(SELECT of every row, JSON decode, indexes), median of the runs; the rest of "
                "the start-up is the interpreter and imports, schema check, lease and listen",
                precision=2,
            )
        ),
        report(
            Result(
                f"Server RSS after loading {STARTUP_OBJECTS:,} objects",
                rss,
                "MiB",
                "",
                None,
                "VmRSS from /proc/<pid>/status right after the first read was answered, median",
                precision=0,
            )
        ),
    ]


# -- entry points -------------------------------------------------------------------------


def background_load(seconds: float = 1.0) -> float:
    """Per cent of one core the machine's other processes use while this one sleeps."""
    before = machine_cpu()
    time.sleep(seconds)
    return (machine_cpu() - before) / seconds * 100


def run() -> list[Result]:
    """Run the four benchmarks in order; every figure beside its target."""
    busy = background_load()
    print(f"  (other processes use {busy:.0f}% of one core before the start)", flush=True)
    if busy > 20:
        print(
            "  WARNING: the machine is not idle: the CPU-bound figures below will be low",
            flush=True,
        )
    results: list[Result] = []
    results += bench_reads()
    results += bench_writes()
    results += bench_fanout()
    results += bench_startup()
    return results


def main(argv: Sequence[str]) -> None:
    """Run the benchmarks, or (``read-worker``/``subscribe-worker ...``) be a worker."""
    if not argv:
        run()
    elif argv[0] == "read-worker":
        read_worker(int(argv[1]), int(argv[2]), float(argv[3]), argv[4])
    elif argv[0] == "lean-subscribe-worker":
        lean_subscribe_worker(int(argv[1]), int(argv[2]), argv[3])
    elif argv[0] == "subscribe-worker":
        subscribe_worker(int(argv[1]), int(argv[2]), argv[3])
    elif argv[0] in ("reads", "writes", "fanout", "startup"):
        {"reads": bench_reads, "writes": bench_writes, "fanout": bench_fanout}.get(
            argv[0], bench_startup
        )()
    else:
        raise SystemExit(f"usage: {sys.argv[0]} [reads|writes|fanout|startup]")


if __name__ == "__main__":
    main(sys.argv[1:])
