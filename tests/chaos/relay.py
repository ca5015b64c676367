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
        if self.mode.name == "cut":
            await client.aclose()
            return
        try:
            upstream = await trio.open_tcp_stream(*self.target)
        except OSError:
            await client.aclose()
            return
        self.connections += 1
        cut = self._cut
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, upstream, "to_peer", nursery.cancel_scope)
            nursery.start_soon(self._pump, upstream, client, "from_peer", nursery.cancel_scope)
            await cut.wait()
            nursery.cancel_scope.cancel()

    async def _pump(
        self,
        src: trio.SocketStream,
        dst: trio.SocketStream,
        direction: str,
        scope: trio.CancelScope,
    ) -> None:
        try:
            while True:
                data = await src.receive_some(65536)
                if not data:
                    break
                while self._holds(direction):
                    await self._changed.wait()
                mode = self.mode
                if mode.delay:
                    await trio.sleep(mode.delay)  # the injected fault itself: added latency
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    def _holds(self, direction: str) -> bool:
        mode = self.mode
        return mode.name == "blackhole" or (
            mode.name == "half-open" and mode.direction != direction
        )
