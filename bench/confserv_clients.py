"""The benchmarked server's clients: in this process, and in worker processes of their own.

:func:`client` is the real client library (:func:`confserv.client.session.open_client`)
as the administrator; :func:`hold_clients` runs many at once; :func:`read_load`
reads for a window. A :class:`bench.worker_procs.Worker` is by default a process of this module
(``python -m bench.confserv_clients read-worker|subscribe-worker|lean-subscribe-worker
...``) speaking line by line on its stdin and stdout: ``READY`` once its clients
are connected, then (``GO`` or ``STOP``) its figures as one JSON line. The lean
subscribers are plain sockets and the sans-IO :class:`addp.Connection` in one
epoll loop, no trio.
"""

from __future__ import annotations

import gc
import json
import math
import os
import select
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AsyncExitStack
from typing import Any

import trio

from addp import AddpOptions, Connection, ConnectionClosed, HandshakeComplete, Message
from bench.measure import cpu_seconds, raise_open_file_limit
from bench.worker_procs import WORKER_TIMEOUT, LoadRun
from confserv.client.session import ConfigClient, open_client
from tests.helpers.system import PASSWORD

HOST = "127.0.0.1"
#: Clients opened at once (keeps the listen backlog and the server's accept loop calm).
OPEN_CONCURRENCY = 50
#: Hosts created before the read runs; reads cycle over their dbids.
READ_OBJECTS = 100


def client(port: int, name: str) -> Any:
    """``open_client`` to the benchmarked server as the administrator."""
    return open_client([(HOST, port)], app=name, user="default", password=PASSWORD)


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


async def wait_for_line() -> str:
    """In a worker: the next line from stdin (read in a thread)."""
    return await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


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
        cpu, wall = cpu_seconds(), time.perf_counter()
        deadline = trio.current_time() + seconds
        start.set()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return LoadRun(sum(counts), wall, cpu)


def read_worker(port: int, clients: int, seconds: float, prefix: str) -> None:
    """Worker: ``read_load`` with READY/GO on stdout/stdin; prints the run as JSON."""

    async def go() -> None:
        print("READY", flush=True)
        if (await wait_for_line()).strip() != "GO":
            raise SystemExit("expected GO")

    run = trio.run(read_load, port, clients, seconds, go, prefix)
    print(json.dumps({"count": run.count, "wall": run.wall, "cpu": run.cpu}), flush=True)


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
            cpu = announce_ready()
            await wait_for_line()
            cpu = cpu_seconds() - cpu
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
            "password": PASSWORD,
            "daemon": False,
        },
        {"op": "subscribe", "id": 2, "type": "Host"},
    ):
        got = answer(request)
        if not got.get("ok"):
            raise RuntimeError(f"{name}: {request['op']} refused: {got}")
    sock.setblocking(False)
    return sock, conn


def announce_ready() -> float:
    """In a subscriber worker whose clients are all set up: freeze the garbage
    collector, print READY and return this process's CPU seconds so far.

    ``gc.freeze()`` moves everything the set-up made (a session is some 200 tracked
    objects: tasks, cancel scopes, channels) out of every later collection, as
    ``confserv`` does once its configuration is loaded. Without it a full collection
    of a process holding 500 sessions took 25 ms of wall time on this machine and
    fell, once in 30 writes, on a notification (issue 16: 58 ms at p99 instead of
    40). Every subscriber worker does it, ours and etcd's alike.
    """
    gc.freeze()
    cpu = cpu_seconds()
    print("READY", flush=True)
    return cpu


def serve_until_stop(fds: Collection[int], readable: Callable[[int], bool]) -> float:
    """In a worker: print READY, then call ``readable(fd)`` for each of ``fds`` that is
    readable (False: stop watching it) until a line (STOP) or the end comes on
    stdin, in one epoll loop; returns the CPU seconds this process used meanwhile."""
    poller = select.epoll()
    try:
        for fd in fds:
            poller.register(fd, select.EPOLLIN)
        stdin = sys.stdin.fileno()
        poller.register(stdin, select.EPOLLIN)
        cpu = announce_ready()
        running = True
        while running:
            for fd, _ in poller.poll(1.0):
                if fd == stdin:
                    running = False
                elif not readable(fd):
                    poller.unregister(fd)
        return cpu_seconds() - cpu
    finally:
        poller.close()


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

    def readable(fd: int) -> bool:
        sock, conn = subscribers[fd]
        data = sock.recv(65536)
        now = time.monotonic()
        if not data:
            return False
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
        return True

    try:
        cpu = serve_until_stop(list(subscribers), readable)
    finally:
        for sock, _ in subscribers.values():
            sock.close()
    print(json.dumps({"seen": seen, "cpu": cpu, "opened": opened}), flush=True)


def sink_worker(port: int, clients: int) -> None:
    """Worker: ``clients`` plain sockets to ``port`` read in one epoll loop, the bytes
    thrown away (the floor of a fan-out: no protocol, no decoding). Prints READY
    once all are connected; on STOP (stdin) prints ``{"reads": [monotonic times of
    every read], "cpu": s}``."""
    raise_open_file_limit(clients + 256)
    socks = [socket.create_connection((HOST, port), timeout=WORKER_TIMEOUT) for _ in range(clients)]
    for sock in socks:
        sock.setblocking(False)
    reads: list[float] = []

    def readable(fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        reads.append(time.monotonic())
        return bool(data)

    try:
        cpu = serve_until_stop([sock.fileno() for sock in socks], readable)
    finally:
        for sock in socks:
            sock.close()
    print(json.dumps({"reads": reads, "cpu": cpu}), flush=True)


async def create_hosts(port: int, count: int) -> None:
    """Create ``count`` Hosts ``bench-host-<i>`` through one client."""
    async with client(port, "bench-setup") as c:
        tenant = (await c.read("Tenant"))[0]["dbid"]
        for i in range(count):
            await c.create(
                "Host",
                {"name": f"bench-host-{i}", "ip_address": "127.0.0.1", "tenant_dbid": tenant},
            )


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


def main(argv: Sequence[str]) -> None:
    """Be a worker: ``read-worker PORT CLIENTS SECONDS PREFIX``,
    ``[lean-]subscribe-worker PORT CLIENTS PREFIX`` or ``sink-worker PORT CLIENTS``."""
    if argv and argv[0] == "read-worker":
        read_worker(int(argv[1]), int(argv[2]), float(argv[3]), argv[4])
    elif argv and argv[0] == "lean-subscribe-worker":
        lean_subscribe_worker(int(argv[1]), int(argv[2]), argv[3])
    elif argv and argv[0] == "subscribe-worker":
        subscribe_worker(int(argv[1]), int(argv[2]), argv[3])
    elif argv and argv[0] == "sink-worker":
        sink_worker(int(argv[1]), int(argv[2]))
    else:
        raise SystemExit(
            f"usage: {sys.argv[0]} read-worker|[lean-]subscribe-worker|sink-worker ..."
        )


if __name__ == "__main__":
    main(sys.argv[1:])
