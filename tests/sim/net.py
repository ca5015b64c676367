"""A simulated network: in-memory streams between simulated processes, with faults per link.

:class:`SimNetwork` is one world's network. Each simulated process gets its own
view (:meth:`SimNetwork.view`, an :class:`addp.transport.Network`), installed
for its tasks with :func:`addp.transport.use_network`: what it connects and
listens on is its own, and every byte it sends or reads passes its
:class:`~tests.sim.gate.Gate` (paused: nothing moves; dead: everything fails).

A connection is two one-way :class:`_Pipe` buffers, bounded like a socket's
(a sender blocks when the peer reads nothing). Bytes arrive in order after the
link's latency. Faults are set per pair of processes (:meth:`SimNetwork.partition`):

- ``cut``: every connection between them is reset and new ones are refused;
- ``blackhole``: nothing arrives either way (bytes are held, as TCP retransmits
  through a partition, and flow again on :meth:`SimNetwork.heal`); a new
  connection hangs until healed;
- ``half-open``: one direction is held, the other flows;
- ``delay``: extra latency on both directions.

A process that ends (or is killed) closes its ends: the peer reads the end
of the stream after what was already sent, as from a kernel closing the
sockets of a dead process.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import trio

from .gate import Gate

#: Bytes a connection buffers one way before the sender blocks (a socket's buffers).
CAPACITY = 256 * 1024
#: One-way latency of every link, seconds (0: delivered in the same instant).
LATENCY = 0.0
#: What a partition may be.
MODES = ("cut", "blackhole", "half-open", "delay")


class _Pipe:
    """One direction of a connection: what ``src`` sent and ``dst`` has not read yet."""

    __slots__ = (
        "buffered",
        "changed",
        "chunks",
        "dst",
        "eof",
        "last_ready",
        "reader_gone",
        "reset",
        "src",
    )

    def __init__(self, src: str, dst: str) -> None:
        self.src = src
        self.dst = dst
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.buffered = 0
        self.eof = False  # the end of the stream was sent (after the chunks)
        self.reset = False
        self.reader_gone = False  # the receiving end is closed: sends fail
        self.last_ready = 0.0
        self.changed = trio.Event()

    def notify(self) -> None:
        """Wake whoever waits on this pipe."""
        changed, self.changed = self.changed, trio.Event()
        changed.set()


@dataclass
class _Listener:
    """Where ``open_stream`` delivers the server ends of new connections."""

    net: SimNetwork
    owner: str
    host: str
    port: int
    gate: Gate
    queue: collections.deque[SimStream] = field(default_factory=collections.deque)
    changed: trio.Event = field(default_factory=trio.Event)
    closed: bool = False


class _SockName:
    """What ``listener.socket`` is for a simulated listener: its address."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)

    def getsockname(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self._address


class SimListener(trio.abc.Listener[trio.abc.Stream]):
    """A listening address of one simulated process (shaped like ``trio.SocketListener``)."""

    def __init__(self, state: _Listener) -> None:
        self._state = state
        self.socket = _SockName(state.host, state.port)

    async def accept(self) -> trio.abc.Stream:
        """The next connection made to this address."""
        state = self._state
        while True:
            if state.gate.dead:
                await trio.sleep_forever()  # a dead process accepts nothing more
            if state.closed:
                raise trio.ClosedResourceError("listener closed")
            if state.queue and not state.gate.paused:
                await trio.lowlevel.checkpoint()
                if state.queue:
                    return state.queue.popleft()
                continue
            changed = state.changed
            if state.gate.paused:
                await state.gate.wait_running()
            else:
                await changed.wait()

    async def aclose(self) -> None:
        """Stop listening (connections made meanwhile are refused)."""
        self._state.net._close_listener(self._state)
        await trio.lowlevel.checkpoint()


class SimStream(trio.abc.Stream):
    """One end of a simulated connection."""

    def __init__(
        self,
        net: SimNetwork,
        owner: str,
        gate: Gate,
        inbound: _Pipe,
        outbound: _Pipe,
        peer: tuple[str, int],
        peer_owner: str,
    ) -> None:
        self.net = net
        self.owner = owner
        #: The process at the other end.
        self.peer_owner = peer_owner
        self.gate = gate
        self._in = inbound
        self._out = outbound
        #: The other end's address, as ``getpeername`` would give it.
        self.peer = peer
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer after the link's latency; blocks while the peer's
        buffer is full. Raises ``BrokenResourceError`` on a reset or closed connection."""
        out = self._out
        while True:
            if self.closed:
                raise trio.ClosedResourceError("stream closed")
            await self._running()
            if out.reset:
                raise trio.BrokenResourceError("connection reset by peer")
            if out.reader_gone:
                raise trio.BrokenResourceError("broken pipe: the peer closed")
            if out.buffered < CAPACITY:
                break
            await out.changed.wait()
        if data:
            now = trio.current_time()
            ready = max(now + LATENCY + self.net.delay(out.src, out.dst), out.last_ready)
            out.last_ready = ready
            out.chunks.append((ready, bytes(data)))
            out.buffered += len(data)
            out.notify()

    async def wait_send_all_might_not_block(self) -> None:
        """Returns at once (the pipe has room, or a send will fail)."""
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """What has arrived (up to ``max_bytes``); ``b""`` at the end of the stream."""
        inbound = self._in
        limit = max_bytes or 65536
        while True:
            if self.closed:
                raise trio.ClosedResourceError("stream closed")
            await self._running()
            if inbound.reset:
                raise trio.BrokenResourceError("connection reset by peer")
            deadline = math.inf
            if not self.net.holds(inbound.src, inbound.dst):
                now = trio.current_time()
                if inbound.chunks:
                    ready, _ = inbound.chunks[0]
                    if ready <= now:
                        return self._take(inbound, now, limit)
                    deadline = ready
                elif inbound.eof:
                    return b""
            changed = inbound.changed
            if deadline == math.inf:
                await _wait_either(changed, self.gate)
            else:
                with trio.move_on_at(deadline):
                    await _wait_either(changed, self.gate)

    @staticmethod
    def _take(inbound: _Pipe, now: float, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        chunks = inbound.chunks
        while chunks and chunks[0][0] <= now and size < limit:
            ready, data = chunks[0]
            if size + len(data) > limit:
                cut = limit - size
                parts.append(data[:cut])
                chunks[0] = (ready, data[cut:])
                size = limit
                break
            chunks.popleft()
            parts.append(data)
            size += len(data)
        inbound.buffered -= size
        inbound.notify()  # a sender may wait for room
        return b"".join(parts)

    async def _running(self) -> None:
        try:
            await self.gate.wait_running()
        except Exception as exc:  # ProcessDead: a dead process's socket is gone
            raise trio.BrokenResourceError("the process is dead") from exc

    async def aclose(self) -> None:
        """Close this end: the peer reads the end of the stream; its sends fail."""
        self.close_now()
        await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """:meth:`aclose` without a checkpoint (a process's ends, closed as it exits)."""
        if self.closed:
            return
        self.closed = True
        if not self._out.eof:
            self._out.eof = True
            self._out.notify()
        self._in.reader_gone = True
        self._in.notify()
        self.net._forget(self)

    def reset(self) -> None:
        """Reset the connection (both ends' next operation fails)."""
        for pipe in (self._in, self._out):
            pipe.reset = True
            pipe.notify()


async def _wait_either(changed: trio.Event, gate: Gate) -> None:
    """Wait for ``changed``; the caller loops and re-checks everything (pause included)."""
    if gate.paused:
        await gate.wait_running()
    else:
        await changed.wait()


class ProcessNetwork:
    """One simulated process's view of the network (an :class:`addp.transport.Network`)."""

    def __init__(self, net: SimNetwork, name: str, gate: Gate) -> None:
        self.net = net
        self.name = name
        self.gate = gate

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        """Connect to ``host:port`` (see :class:`SimNetwork`)."""
        return await self.net._connect(self, host, port)

    async def open_listeners(self, host: str, port: int) -> list[Any]:
        """Listen on ``host:port`` (0: a free port); ``OSError`` when it is taken."""
        return [self.net._listen(self, host, port)]


class SimNetwork:
    """One world's network (see module docstring)."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._streams: dict[SimStream, None] = {}  # ordered: resets in a stable order
        self._held: set[tuple[str, str]] = set()
        self._delay: dict[tuple[str, str], float] = {}
        self._cut: set[frozenset[str]] = set()
        self._faults: dict[frozenset[str], str] = {}
        self._ports = itertools.count(40000)
        self._changed = trio.Event()
        #: Connections made, per (from, to) process: proof that a link was used.
        self.connections: collections.Counter[tuple[str, str]] = collections.Counter()

    def view(self, name: str, gate: Gate) -> ProcessNetwork:
        """The network as process ``name`` sees it."""
        return ProcessNetwork(self, name, gate)

    # -- faults -----------------------------------------------------------------

    def holds(self, src: str, dst: str) -> bool:
        """Whether bytes from ``src`` to ``dst`` are held now."""
        return (src, dst) in self._held

    def delay(self, src: str, dst: str) -> float:
        """Extra latency from ``src`` to ``dst`` now."""
        return self._delay.get((src, dst), 0.0) if self._delay else 0.0

    def fault(self, a: str, b: str) -> str | None:
        """The partition between ``a`` and ``b``, if any."""
        return self._faults.get(frozenset((a, b)))

    def partition(self, a: str, b: str, mode: str, *, delay: float = 0.0) -> None:
        """Start a partition between processes ``a`` and ``b`` (see module docstring).
        ``half-open`` holds ``a`` to ``b`` and lets ``b`` to ``a`` through."""
        if mode not in MODES:
            raise ValueError(f"no partition mode {mode!r}")
        self.heal(a, b)
        self._faults[frozenset((a, b))] = mode
        if mode == "cut":
            self._cut.add(frozenset((a, b)))
            for stream in list(self._streams):
                if {stream.owner, stream.peer_owner} == {a, b}:
                    stream.reset()
        elif mode == "blackhole":
            self._held |= {(a, b), (b, a)}
        elif mode == "half-open":
            self._held.add((a, b))
        else:
            self._delay[(a, b)] = self._delay[(b, a)] = delay
        self._wake(a, b)

    def heal(self, a: str, b: str) -> None:
        """End the partition between ``a`` and ``b``: held bytes flow again."""
        if self._faults.pop(frozenset((a, b)), None) is None:
            return
        self._cut.discard(frozenset((a, b)))
        self._held -= {(a, b), (b, a)}
        self._delay.pop((a, b), None)
        self._delay.pop((b, a), None)
        self._wake(a, b)

    def heal_all(self) -> None:
        """End every partition."""
        for pair in list(self._faults):
            a, b = sorted(pair)
            self.heal(a, b)

    def _wake(self, a: str, b: str) -> None:
        for stream in self._streams:
            if {stream.owner, stream.peer_owner} == {a, b}:
                stream._in.notify()
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    # -- processes ----------------------------------------------------------------

    def release(self, gate: Gate) -> None:
        """The process of ``gate`` ended: close its listeners and its ends of every
        connection (by the process itself, not its name: a copy of it may run)."""
        for state in [s for s in self._listeners.values() if s.gate is gate]:
            self._close_listener(state)
        for stream in [s for s in self._streams if s.gate is gate]:
            stream.close_now()

    def listening(self, host: str, port: int) -> str | None:
        """The process listening on ``host:port``, if any."""
        state = self._listeners.get((host, port))
        return None if state is None else state.owner

    # -- internals ----------------------------------------------------------------

    def _listen(self, proc: ProcessNetwork, host: str, port: int) -> SimListener:
        if proc.gate.dead:
            raise OSError("the process is dead")
        if port == 0:
            port = next(self._ports)
        if (host, port) in self._listeners:
            raise OSError(98, f"address already in use: {host}:{port}")
        state = _Listener(self, proc.name, host, port, proc.gate)
        self._listeners[host, port] = state
        return SimListener(state)

    def _close_listener(self, state: _Listener) -> None:
        if self._listeners.get((state.host, state.port)) is state:
            del self._listeners[state.host, state.port]
        state.closed = True
        for stream in state.queue:
            stream.close_now()
        state.queue.clear()
        changed, state.changed = state.changed, trio.Event()
        changed.set()

    async def _connect(self, proc: ProcessNetwork, host: str, port: int) -> trio.abc.Stream:
        try:
            await proc.gate.wait_running()
        except Exception as exc:
            raise OSError("the process is dead") from exc
        while True:
            state = self._listeners.get((host, port))
            if state is None:
                raise ConnectionRefusedError(111, f"connect to {host}:{port}: connection refused")
            dst = state.owner
            if frozenset((proc.name, dst)) in self._cut:
                raise ConnectionRefusedError(111, f"connect to {host}:{port}: connection reset")
            if not (self.holds(proc.name, dst) or self.holds(dst, proc.name)):
                break
            await self._changed.wait()  # the handshake is lost until the partition heals
        await trio.sleep(2 * LATENCY + self.delay(proc.name, dst) + self.delay(dst, proc.name))
        if proc.gate.dead:
            raise OSError("the process is dead")
        if state.closed or self._listeners.get((host, port)) is not state:
            raise ConnectionRefusedError(111, f"connect to {host}:{port}: connection refused")
        to_server, to_client = _Pipe(proc.name, dst), _Pipe(dst, proc.name)
        local = (proc.name, next(self._ports))
        client = SimStream(self, proc.name, proc.gate, to_client, to_server, (host, port), dst)
        server = SimStream(self, dst, state.gate, to_server, to_client, local, proc.name)
        self._streams[client] = None
        self._streams[server] = None
        self.connections[proc.name, dst] += 1
        state.queue.append(server)
        changed, state.changed = state.changed, trio.Event()
        changed.set()
        return client

    def _forget(self, stream: SimStream) -> None:
        self._streams.pop(stream, None)
