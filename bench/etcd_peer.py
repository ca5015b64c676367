"""etcd beside our server (issue 16): install, start and stop it, and its clients and workers.

:func:`etcd_binary` finds Debian's ``etcd`` or, as root, installs the
``etcd-server`` package (:func:`tests.helpers.debian.ensure_program`);
:func:`running_etcd` runs a single-member etcd on 127.0.0.1 only (client and
peer URLs on loopback, a temporary data directory removed at the end, killed
with its parent by ``PR_SET_PDEATHSIG``). Every request goes through etcd's
JSON/HTTP gRPC gateway (``POST /v3/kv/range``, ``/v3/kv/put``, ``/v3/watch``,
keys and values in base64) over HTTP/1.1 keep-alive connections spoken with
h11, the sans-IO HTTP library: :class:`EtcdClient` blocks (set-up, the fan-out
writer), :func:`range_load` runs many reading clients on trio as
:func:`bench.confserv_clients.read_load` does ours. A worker process of this
module (``python -m bench.etcd_peer range-worker|watch-worker ...``) speaks the
same lines as :mod:`bench.confserv_clients`' workers: ``READY``, then (``GO``
or ``STOP``) one JSON line.
"""

from __future__ import annotations

import base64
import ctypes
import json
import math
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import trio

from bench.confserv_clients import serve_until_stop, wait_for_line
from bench.measure import cpu_seconds, raise_open_file_limit
from bench.worker_procs import LoadRun, Worker, workers
from tests.helpers.debian import ensure_program
from tests.helpers.system import free_port

HOST = "127.0.0.1"
#: Seconds etcd gets to answer ``GET /health`` after being spawned.
START_TIMEOUT = 30.0
#: Seconds etcd gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0
#: Seconds one request (or a worker's connection set-up) may take.
REQUEST_TIMEOUT = 30.0
#: Keys of the read runs are ``bench-host-<i>`` for i in 1 .. READ_KEYS + 1 (as our dbids).
READ_KEYS = 100
#: ``prctl`` option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1


def etcd_binary() -> str:
    """``etcd``'s path; as root, Debian's ``etcd-server`` is installed when it is missing.

    :class:`tests.helpers.debian.ProgramUnavailable` when it cannot be had.
    """
    return ensure_program("etcd", "etcd-server")


def b64(text: str | bytes) -> str:
    """``text`` (UTF-8) in base64, as the gateway carries keys and values."""
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def host_value(index: int) -> bytes:
    """The value stored under ``bench-host-<index>``: the JSON of a Host as our server keeps it."""
    from confserv.model.objects import new_object

    obj = new_object(
        "Host", {"name": f"bench-host-{index}", "ip_address": "127.0.0.1", "tenant_dbid": 1}
    )
    obj["dbid"] = index
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class EtcdProcess:
    """One running etcd: its process, client port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of its log."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: be killed when the benchmark's process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        return b'"health":"true"' in answer
    except OSError:
        return False


@contextmanager
def running_etcd(binary: str | None = None) -> Iterator[EtcdProcess]:
    """A single-member etcd on 127.0.0.1 for the block, in a temporary data directory.

    Waits (at most :data:`START_TIMEOUT`) until ``GET /health`` says true;
    at the end SIGTERM (SIGKILL after :data:`STOP_TIMEOUT`) and the directory
    is removed. The client port is ``.port``; its log is ``etcd.log`` there.
    """
    binary = binary or etcd_binary()
    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        port, peer = free_port(), free_port()
        client_url, peer_url = f"http://{HOST}:{port}", f"http://{HOST}:{peer}"
        args = [
            binary,
            "--name=bench",
            f"--data-dir={tmp}/data",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=bench={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
        ]
        log = Path(tmp) / "etcd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        etcd = EtcdProcess(proc, port, log)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _healthy(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"etcd exited ({proc.returncode}):\n{etcd.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd not healthy after {START_TIMEOUT:g} s")
                time.sleep(0.05)
            yield etcd
        finally:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- HTTP/1.1 through h11 -----------------------------------------------------------------


class EtcdError(RuntimeError):
    """The gateway answered something other than 200, or closed the connection."""


def request_bytes(conn: h11.Connection, path: str, body: bytes) -> bytes:
    """The bytes of ``POST path`` with a JSON ``body`` on ``conn`` (keep-alive)."""
    headers = [
        ("Host", HOST),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ]
    parts = [
        conn.send(h11.Request(method="POST", target=path, headers=headers)),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(part for part in parts if part)


class _Answer:
    """The response being read on an h11 connection: status and body so far."""

    def __init__(self) -> None:
        self.status = 0
        self.body: list[bytes] = []

    def feed(self, conn: h11.Connection) -> bool:
        """Take ``conn``'s events; True once the whole response is in (then next cycle)."""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Response):
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise EtcdError("the gateway closed the connection")

    def json(self, path: str) -> dict[str, Any]:
        """The body as JSON; EtcdError unless the status was 200."""
        text = b"".join(self.body)
        if self.status != 200:
            raise EtcdError(f"POST {path}: {self.status} {text[:200]!r}")
        answer: dict[str, Any] = json.loads(text)
        return answer


def decoded_value(kv: dict[str, Any]) -> Any:
    """A key-value's value (base64 of JSON) decoded, as a client would use it."""
    return json.loads(base64.b64decode(kv["value"]))


class EtcdClient:
    """A blocking keep-alive HTTP/1.1 client of the gateway (set-up, tests, the writer)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h11.Connection(h11.CLIENT)

    def post(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """``POST path`` with ``request`` as JSON; the JSON answer."""
        self.sock.sendall(request_bytes(self.conn, path, json.dumps(request).encode()))
        answer = _Answer()
        while not answer.feed(self.conn):
            self.conn.receive_data(self.sock.recv(65536))
        return answer.json(path)

    def put(self, key: str, value: bytes) -> int:
        """Put ``key``; the revision of the write."""
        answer = self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(answer["header"]["revision"])

    def get(self, key: str, serializable: bool = False) -> Any:
        """The decoded value of ``key`` (None when absent)."""
        answer = self.post("/v3/kv/range", {"key": b64(key), "serializable": serializable})
        kvs = answer.get("kvs") or []
        return decoded_value(kvs[0]) if kvs else None

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def put_hosts(port: int, count: int = READ_KEYS + 1) -> None:
    """Put ``bench-host-1`` .. ``bench-host-<count>`` (the read runs' keys)."""
    client = EtcdClient(port)
    try:
        for index in range(1, count + 1):
            client.put(f"bench-host-{index}", host_value(index))
    finally:
        client.close()


# -- reads on trio ------------------------------------------------------------------------


class _TrioHttp:
    """A keep-alive HTTP/1.1 connection to the gateway on a trio stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        """``POST path`` with a JSON ``body``; the JSON answer."""
        await self.stream.send_all(request_bytes(self.conn, path, body))
        answer = _Answer()
        while not answer.feed(self.conn):
            self.conn.receive_data(await self.stream.receive_some(65536))
        return answer.json(path)


async def read_key(http: _TrioHttp, index: int, serializable: bool) -> Any:
    """Range ``bench-host-<index>`` and decode its value (the client's whole job)."""
    body = json.dumps({"key": b64(f"bench-host-{index}"), "serializable": serializable})
    kvs = (await http.post("/v3/kv/range", body.encode())).get("kvs")
    if not kvs:
        raise EtcdError(f"no key bench-host-{index}")
    return decoded_value(kvs[0])


async def range_load(
    port: int, clients: int, seconds: float, go: Callable[[], Awaitable[None]], serializable: bool
) -> LoadRun:
    """:func:`bench.confserv_clients.read_load` for etcd: ``clients`` connections, one
    warm-up range each, ``await go()``, then ranges one at a time per client for ``seconds``,
    cycling over the keys ``bench-host-1`` .. ``bench-host-<READ_KEYS + 1>``."""
    counts = [0] * clients
    opened = 0
    all_ready, start = trio.Event(), trio.Event()
    deadline = math.inf

    async def one(index: int) -> None:
        nonlocal opened
        async with await trio.open_tcp_stream(HOST, port) as stream:
            http = _TrioHttp(stream)
            await read_key(http, 1, serializable)
            opened += 1
            if opened == clients:
                all_ready.set()
            await start.wait()
            n = 0
            key = index % (READ_KEYS + 1) + 1
            while trio.current_time() < deadline:
                await read_key(http, key, serializable)
                n += 1
                key = key % (READ_KEYS + 1) + 1
            counts[index] = n

    cpu = wall = 0.0
    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(one, index)
        with trio.fail_after(REQUEST_TIMEOUT):
            await all_ready.wait()
        await go()
        cpu, wall = cpu_seconds(), time.perf_counter()
        deadline = trio.current_time() + seconds
        start.set()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return LoadRun(sum(counts), wall, cpu)


# -- watchers -----------------------------------------------------------------------------


class Watcher:
    """One ``POST /v3/watch`` stream on a plain socket; decodes the events as they arrive."""

    def __init__(self, port: int, key: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h11.Connection(h11.CLIENT)
        self._line = b""
        body = json.dumps({"create_request": {"key": b64(key)}}).encode()
        self.sock.sendall(request_bytes(self.conn, "/v3/watch", body))
        while not any(message.get("created") for message in self.receive()):
            pass
        self.sock.setblocking(False)

    def receive(self) -> list[dict[str, Any]]:
        """Read once from the socket; the ``result`` messages completed by it."""
        data = self.sock.recv(65536)
        if not data:
            raise EtcdError("the gateway closed a watch stream")
        self.conn.receive_data(data)
        results: list[dict[str, Any]] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                return results
            if isinstance(event, h11.Response) and event.status_code != 200:
                raise EtcdError(f"POST /v3/watch: {event.status_code}")
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                raise EtcdError("the gateway ended a watch stream")
            if not isinstance(event, h11.Data):
                continue
            *lines, self._line = (self._line + bytes(event.data)).split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "result" not in message:
                    raise EtcdError(f"watch stream: {line[:200]!r}")
                results.append(message["result"])

    def revisions(self) -> list[int]:
        """Read once; the ``mod_revision`` of each event completed (its value decoded)."""
        out: list[int] = []
        for result in self.receive():
            for event in result.get("events", ()):
                decoded_value(event["kv"])
                out.append(int(event["kv"]["mod_revision"]))
        return out


def watch_worker(port: int, clients: int, key: str) -> None:
    """Worker: ``clients`` watchers of ``key`` in one epoll loop, as our lean subscribers.

    READY once every stream is created; on STOP (stdin) prints, per revision,
    ``[count, first, last]`` ``time.monotonic()`` of decoding, as
    :func:`bench.confserv_clients.lean_subscribe_worker` does per serial.
    """
    raise_open_file_limit(clients + 256)
    opened = time.perf_counter()
    watchers = {}
    for _ in range(clients):
        watcher = Watcher(port, key)
        watchers[watcher.sock.fileno()] = watcher
    opened = time.perf_counter() - opened
    seen: dict[int, list[float]] = {}

    def readable(fd: int) -> bool:
        revisions = watchers[fd].revisions()
        now = time.monotonic()
        for revision in revisions:
            entry = seen.get(revision)
            if entry is None:
                seen[revision] = [1, now, now]
            else:
                entry[0] += 1
                entry[2] = now
        return True

    try:
        cpu = serve_until_stop(list(watchers), readable)
    finally:
        for watcher in watchers.values():
            watcher.sock.close()
    print(json.dumps({"seen": seen, "cpu": cpu, "opened": opened}), flush=True)


# -- worker processes ---------------------------------------------------------------------


class EtcdWorker(Worker):
    """A worker process of this module (same line protocol as :class:`Worker`)."""

    module = "bench.etcd_peer"


def etcd_workers(args: Sequence[Sequence[str]]) -> AbstractContextManager[list[Worker]]:
    """Start one worker of this module per argument list; stop them all on exit."""
    return workers(args, EtcdWorker)


def range_worker(port: int, clients: int, seconds: float, serializable: bool) -> None:
    """Worker: :func:`range_load` with READY/GO on stdout/stdin; prints the run as JSON."""

    async def go() -> None:
        print("READY", flush=True)
        if (await wait_for_line()).strip() != "GO":
            raise SystemExit("expected GO")

    run = trio.run(range_load, port, clients, seconds, go, serializable)
    print(json.dumps({"count": run.count, "wall": run.wall, "cpu": run.cpu}), flush=True)


def main(argv: Sequence[str]) -> None:
    """Be a worker: ``range-worker PORT CLIENTS SECONDS serializable|linearizable`` or
    ``watch-worker PORT CLIENTS KEY``."""
    with suppress(BrokenPipeError):
        if len(argv) == 5 and argv[0] == "range-worker":
            range_worker(int(argv[1]), int(argv[2]), float(argv[3]), argv[4] == "serializable")
        elif len(argv) == 4 and argv[0] == "watch-worker":
            watch_worker(int(argv[1]), int(argv[2]), argv[3])
        else:
            raise SystemExit(f"usage: {sys.argv[0]} range-worker|watch-worker ...")


if __name__ == "__main__":
    main(sys.argv[1:])
