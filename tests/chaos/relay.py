"""A fault-injecting TCP relay on loopback, for partitions between real components.

Point a component at the relay's port instead of its peer's; the relay
forwards both directions and can be switched at any time to:

- ``pass``: forward (optionally after ``delay`` seconds per chunk);
- ``cut``: close every relayed connection and refuse new ones (RST-like end);
- ``blackhole``: keep connections open but forward nothing (a silent peer:
  only ADDP can tell); bytes are held, not dropped, as TCP retransmits
  through a real partition, and flow again when the mode returns to ``pass``;
- ``half-open``: forward one direction only (``to_peer`` or ``from_peer``),
  holding the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import trio


@dataclass
class Mode:
    """How the relay treats traffic now."""

    name: str = "pass"  # pass | cut | blackhole | half-open
    delay: float = 0.0
    direction: str = "to_peer"  # for half-open: the direction still forwarded


class Relay:
    """Listens on 127.0.0.1 and forwards to ``(host, port)`` under the current :class:`Mode`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode = Mode()
        self.port = 0
        self._cut = trio.Event()
        self._changed = trio.Event()
        self.connections = 0

    def set(self, name: str, *, delay: float = 0.0, direction: str = "to_peer") -> None:
        """Switch mode; ``cut`` also ends every open relayed connection."""
        self.mode = Mode(name, delay, direction)
        self._changed.set()
        self._changed = trio.Event()
        if name == "cut":
            self._cut.set()
            self._cut = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept and relay until cancelled; ``task_status`` gets the port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        cut = self._cut  # before connecting: a cut meanwhile must end this one too
        if self.mode.name == "cut":
            await client.aclose()
            return
        try:
            upstream = await trio.open_tcp_stream(*self.target)
        except OSError:
            await client.aclose()
            return
        if cut.is_set() or self.mode.name == "cut":
            await client.aclose()
            await upstream.aclose()
            return
        self.connections += 1
        async with client, upstream, trio.open_nursery() as nursery:
            ways = ((client, upstream, "to_peer"), (upstream, client, "from_peer"))
            for src, dst, direction in ways:
                send, receive = trio.open_memory_channel[tuple[float, bytes]](math.inf)
                nursery.start_soon(self._read, src, send, direction, nursery.cancel_scope)
                nursery.start_soon(self._write, receive, dst, nursery.cancel_scope)
            await cut.wait()
            nursery.cancel_scope.cancel()

    async def _read(
        self,
        src: trio.SocketStream,
        out: trio.MemorySendChannel[tuple[float, bytes]],
        direction: str,
        scope: trio.CancelScope,
    ) -> None:
        """Read on, stamping each chunk with when it may leave (arrival + delay)."""
        try:
            async with out:
                while True:
                    data = await src.receive_some(65536)
                    if not data:
                        break
                    while self._holds(direction):
                        await self._changed.wait()
                    out.send_nowait((trio.current_time() + self.mode.delay, data))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            scope.cancel()

    async def _write(
        self,
        chunks: trio.MemoryReceiveChannel[tuple[float, bytes]],
        dst: trio.SocketStream,
        scope: trio.CancelScope,
    ) -> None:
        """Send each chunk at its time: latency is added, bandwidth is not cut."""
        try:
            async for due, data in chunks:
                await trio.sleep_until(due)  # the injected fault itself: added latency
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    def _holds(self, direction: str) -> bool:
        mode = self.mode
        return mode.name == "blackhole" or (
            mode.name == "half-open" and mode.direction != direction
        )
