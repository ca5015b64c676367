"""The state and the reader task behind :class:`~addp.transport.link.Link`.

:class:`LinkCore` holds a link's connection, buffers and inbox, and runs its
one reader task: it feeds received bytes and the trio clock into the sans-IO
connection, serves its deadlines, flushes what it queues (polls, replies),
parks an idle link's socket with the process's hub (:mod:`.hub`) and hands
application messages to the inbox. :class:`~addp.transport.link.Link` adds the
public calls (send, receive, close). Split from ``link.py`` for size only.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import trio

from .._connection import Connection
from .._errors import (
    AddpTimeout,
    LinkBroken,
    LinkClosedByPeer,
    LinkClosedLocally,
    LinkEnded,
    LinkProtocolError,
    RemoteProtocolError,
)
from .._events import ConnectionClosed, Event, HandshakeComplete, Message, PeerLostEvent, Trace
from .._peer_text import peer_text
from .ends import TRANSPORT_ERRORS, end_reason, suppress_transport
from .hub import MIN_TIMEOUT as HUB_MIN_TIMEOUT
from .hub import available as hub_available
from .hub import current_hub

#: Bytes asked of the stream per read.
RECEIVE_SIZE = 65536
#: Messages buffered between the reader task and the consumer.
INBOX_SIZE = 1024
#: Payload bytes buffered between the reader task and the consumer; past it the
#: reader stops reading the socket (TCP back-pressure) until the consumer catches
#: up. Until the peer is authenticated the bound is its frame limit instead.
INBOX_BYTES = 4 * 1024 * 1024
#: Buffered messages handed over in a row before ``receive`` yields to the scheduler.
FAST_RECEIVES = 64
#: Application messages coming closer together than this (seconds) keep a link's
#: reader reading its socket itself; further apart it parks with the hub between them.
BUSY_GAP = 1 / 32
#: Default time allowed for the peer's HELLO.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: How long a closing side waits to flush its CLOSE frame.
CLOSE_FLUSH_TIMEOUT = 1.0

_trace_log = logging.getLogger("addp.trace")


class HandshakeTimeout(LinkEnded):
    """The peer did not complete the handshake within the allowed time."""


class DeadlineExpired(LinkEnded):
    """This side closed the link: the peer did not authenticate, or finish a frame, in time."""


class LinkCore:
    """A link's state and its reader task (see the module docstring); the base of
    :class:`~addp.transport.link.Link`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        conn: Connection,
        *,
        name: str,
        on_trace: Callable[[str], None] | None,
        inbox_bytes: int = INBOX_BYTES,
    ) -> None:
        self.name = name
        self._stream = stream
        self._conn = conn
        self._on_trace = on_trace
        self._send_lock = trio.StrictFIFOLock()
        # Unbounded channel: _wait_for_room bounds it, in messages and in bytes.
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[Any, int]](math.inf)
        self._inbox_limit = inbox_bytes
        #: Payload bytes of the messages in the inbox, and an event set when they
        #: fall to the limit or below (the reader waits on it).
        self.inbox_bytes = 0
        #: Messages in the inbox (the channel's own statistics() builds an object
        #: per call, which a hot reader paid for twice per message).
        self.inbox_count = 0
        self._room = trio.Event()
        self._room.set()
        #: Called once when the application declares the peer authenticated.
        self.on_authenticated: Callable[[], None] | None = None
        #: Told True while the application checks the peer's credentials, then False.
        self.on_authenticating: Callable[[bool], None] | None = None
        self._pending: list[Event] = []
        self._end: LinkEnded | None = None
        self._closing: LinkEnded | None = None
        self._fast = 0
        self._ended = trio.Event()
        self.handshake: HandshakeComplete | None = None
        #: Bytes :meth:`write_nowait` took from the connection but the socket
        #: did not accept yet; written first by the next flush.
        self._backlog = bytearray()
        fileno = getattr(getattr(stream, "socket", None), "fileno", None)
        self._fd: int | None = fileno() if callable(fileno) else None
        #: The socket read directly by the reader (a plain TCP stream), else None:
        #: one wait for readability and one read per wake-up (see :meth:`_receive`).
        self._sock: Any = stream.socket if isinstance(stream, trio.SocketStream) else None
        #: Whether the last direct read filled the buffer (more is likely waiting).
        self._full = False
        #: The fd this link's reader is parked with in the hub (:mod:`.hub`), else None.
        self._parked_fd: int | None = None
        #: Whether the reader's last wake-up brought application messages less than
        #: :data:`BUSY_GAP` after the one before (a busy link reads directly; one
        #: that rests parks, even between the single requests and answers of a
        #: link that is mostly idle, or the notifications of a quiet subscriber).
        self._busy = True
        #: Whether the last wake-up brought application messages, and when the last
        #: one that did was (trio clock).
        self._messages = True
        self._last_messages = -math.inf
        #: Where application messages go instead of the inbox (:meth:`Link.set_router`).
        self._router: Callable[[Any], None] | None = None

    @property
    def connection(self) -> Connection:
        """The sans-IO connection, for statistics."""
        return self._conn

    @property
    def inbox_limit(self) -> int:
        """Payload bytes the inbox holds before the reader stops reading the socket."""
        if self._conn.guard.authenticated:
            return self._inbox_limit
        return min(self._inbox_limit, self._conn.frame_limit)

    def write_nowait(self) -> bool:
        """Write what is queued straight to the socket, without waiting; True if all went.

        For a publisher fanning one message out to many links: no task switch
        per link when the socket has room, which is the common case. What the
        socket does not take now stays queued, in order, for the next
        :meth:`flush` (False is returned: the caller must see that one runs).
        Also False when another task is writing or the stream is not a socket.

        Raises:
            LinkEnded: the link is over (the subclass says why).
        """
        if self._end is not None:
            raise self._end
        if self._fd is None:
            return not (self._backlog or self._conn.has_data_to_send)
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            return False
        try:
            self._backlog += self._conn.data_to_send()
            if not self._backlog:
                return True
            written = self._write_some(self._fd, self._backlog)
            if written is None:
                raise self._end  # type: ignore[misc]
            del self._backlog[:written]
            return not self._backlog
        finally:
            self._send_lock.release()

    def _write_some(self, fd: int, data: bytes | bytearray) -> int | None:
        """Write ``data`` to the socket without waiting: the bytes it took (0: full), or
        None when the write failed (the link is then over, as :class:`LinkBroken`)."""
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._finish(LinkBroken(f"send failed: {exc!r}"))
            return None

    def _taken(self, size: int) -> None:
        self.inbox_bytes -= size
        self.inbox_count -= 1
        if self._has_room():
            self._room.set()

    def _has_room(self) -> bool:
        return self.inbox_bytes <= self.inbox_limit and self.inbox_count < INBOX_SIZE

    async def _flush(self) -> None:
        if not (self._backlog or self._conn.has_data_to_send):
            await trio.lowlevel.checkpoint()
            return
        if self._fd is not None and not self._backlog and not self._send_lock.locked():
            # Straight to the socket when it has room (the common case), with the
            # checkpoints of a stream's send_all around it; the rest, if any, below.
            await trio.lowlevel.checkpoint_if_cancelled()
            if self.write_nowait():
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
        # A free lock is taken without a trip through the scheduler, so the
        # bytes reach the socket before other woken tasks run (an answer is
        # not queued behind a fan-out it caused).
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            data = self._conn.data_to_send()
            if self._backlog:
                data, self._backlog = bytes(self._backlog + data), bytearray()
            if data:
                try:
                    await self._stream.send_all(data)
                except TRANSPORT_ERRORS as exc:
                    self._finish(LinkBroken(f"send failed: {exc!r}"))
                    raise self._end from exc  # type: ignore[misc]
        finally:
            self._send_lock.release()

    def _finish(self, reason: LinkEnded) -> None:
        if self._end is None:
            self._end = reason
            self._inbox_send.close()
            self._ended.set()
            if self._parked_fd is not None:
                current_hub().unpark(self)

    def _write_parked(self) -> bool:
        """For the hub: write what is queued straight to the socket; True if it all went
        (False: the reader must see to the rest, as after its own partial write)."""
        fd = self._fd
        if self._end is not None or fd is None or self._backlog or self._send_lock.locked():
            return False
        data = self._conn.data_to_send()
        written = self._write_some(fd, data)
        if written is None:
            return False
        if written < len(data):
            self._backlog += data[written:]
            return False
        return True

    def _may_park(self) -> int | None:
        """The fd to park this idle reader with in the hub, or None to read directly."""
        sock = self._sock
        if sock is None or self._busy or not hub_available():
            return None
        conn = self._conn
        if (
            not conn.guard.idle
            or 0 < conn.keepalive.timeout < HUB_MIN_TIMEOUT  # a tick is too coarse for it
            or conn.has_data_to_send
            or self._backlog
            or not self._room.is_set()
        ):
            return None
        fd: int = sock.fileno()
        return fd if fd >= 0 else None

    async def _park(self, fd: int) -> list[Event]:
        self._parked_fd = fd
        try:
            return await current_hub().park(self, fd)
        finally:
            self._parked_fd = None

    def _trace(self, line: str) -> None:
        if self._on_trace is not None:
            self._on_trace(line)
        else:
            _trace_log.info("%s %s", self.name, line)

    async def _handshake(self, timeout: float) -> None:
        self._conn.start(trio.current_time())
        with trio.move_on_after(timeout):
            await self._flush()
            while self.handshake is None:
                data = await self._stream.receive_some(RECEIVE_SIZE)
                events = self._conn.receive_data(data, trio.current_time())
                for i, event in enumerate(events):
                    if isinstance(event, HandshakeComplete):
                        self.handshake = event
                        self._pending = events[i + 1 :]
                        break
                    if isinstance(event, ConnectionClosed):
                        reason = peer_text(event.reason, 300)
                        raise LinkClosedByPeer(f"closed during handshake: {reason}")
                    if isinstance(event, Trace) and self._conn.trace_enabled:
                        self._trace(event.line)
                await self._flush()
            return
        raise HandshakeTimeout(f"no HELLO from the peer within {timeout:g} s")

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, (PeerLostEvent, ConnectionClosed)):
                self._closing = end_reason(event)
        sizes = iter(self._conn.take_message_sizes())
        router = self._router
        for event in events:
            if isinstance(event, Message):
                size = next(sizes, 0)
                if router is not None:
                    router(event.payload)
                    continue
                self.inbox_bytes += size
                self.inbox_count += 1
                self._inbox_send.send_nowait((event.payload, size))  # the reader waits after
                if not self._has_room() and self._room.is_set():
                    self._room = trio.Event()
            elif isinstance(event, Trace):
                self._trace(event.line)
            elif isinstance(event, (PeerLostEvent, ConnectionClosed)):
                self._finish(end_reason(event))

    def _hand_over_parked(self, events: list[Event], now: float) -> bool:
        """For the hub: hand over the messages it read for this parked link at ``now``
        without waking the reader (to the router, or the inbox). True if ``events``
        were all messages, now dispatched; False (nothing done) when the reader must
        see them. Messages closer together than :data:`BUSY_GAP` make the link busy:
        the hub then wakes the reader, which reads a busy socket itself."""
        if not all(type(event) is Message for event in events):
            return False
        self._dispatch(events)
        self._woken(True, now)
        return True

    def _woken(self, messages: bool, now: float) -> None:
        """A wake-up at ``now`` brought application messages (or not): busy when they
        came less than :data:`BUSY_GAP` after the last that did."""
        self._busy = messages and now - self._last_messages < BUSY_GAP
        self._messages = messages
        if messages:
            self._last_messages = now

    def _stays_parked(self) -> bool:
        """For the hub, after a hand-over: whether the reader may stay parked (the
        inbox has room and the link is not busy)."""
        return self._room.is_set() and not self._busy

    async def _receive(self, deadline: float | None) -> bytes | bytearray | None:
        """The next bytes from the peer (empty at its end of stream), or None when
        ``deadline`` passed first.

        A plain TCP stream is read directly: one wait for readability and one
        read per wake-up, without the stream's own checkpoints around each read
        (a link at rest costs one trip through the scheduler per frame received).
        A busy link (its last bytes carried messages, or filled the buffer) tries
        the socket before waiting for it and yields once after a read, as the
        stream does, so a peer that floods the link does not starve the other
        tasks either.
        """
        sock = self._sock
        if sock is None:
            if deadline is None:  # no ADDP timer: no cancel scope needed
                return await self._stream.receive_some(RECEIVE_SIZE)
            with trio.move_on_at(deadline):
                return await self._stream.receive_some(RECEIVE_SIZE)
            return None
        if self._full or self._busy:
            # As a stream's receive does: read what is there, then yield once.
            await trio.lowlevel.checkpoint_if_cancelled()
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the link's socket was closed")
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                self._full = False
            else:
                self._full = len(data) == RECEIVE_SIZE
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
        if deadline is None:
            await trio.lowlevel.wait_readable(sock)
        else:
            with trio.move_on_at(deadline) as scope:
                await trio.lowlevel.wait_readable(sock)
            if scope.cancelled_caught:
                return None
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the link's socket was closed")
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                # Woken without data, or the last read filled the buffer exactly.
                self._full = False
                if deadline is None:
                    await trio.lowlevel.wait_readable(sock)
                    continue
                with trio.move_on_at(deadline):
                    await trio.lowlevel.wait_readable(sock)
                    continue
                return None
            self._full = len(data) == RECEIVE_SIZE
            return data

    async def _reader_flush(self) -> None:
        """The reader's own writes (REPLY, POLL), bounded by the ADDP deadline.

        Another task may hold the send lock in a write the peer does not read
        (or the reader's own write may block so); waiting without a deadline
        would keep ADDP from ever declaring the peer lost. A peer silent for
        twice the timeout while this side cannot even write to it is lost.
        """
        if not (self._backlog or self._conn.has_data_to_send):
            if self._messages:
                await trio.lowlevel.checkpoint()  # the consumer runs before the next read
            return
        if self._fd is not None and self.write_nowait():
            return  # the common case: the socket took it, no lock to wait on
        keepalive = self._conn.keepalive
        if keepalive.timeout <= 0 or self._end is not None:
            await self._flush()
            return
        limit = keepalive.last_received + 2 * keepalive.timeout
        with trio.move_on_at(limit) as scope:
            await self._flush()
        if scope.cancelled_caught:
            self._finish(
                AddpTimeout(
                    f"ADDP timeout: nothing from the peer for {2 * keepalive.timeout:g} s "
                    "while a write to it was blocked"
                )
            )

    async def _wait_for_room(self) -> None:
        """Stop reading while the inbox holds more than its limit in bytes: the
        peer meets TCP back-pressure. An authentication deadline still holds; the
        time waited is not counted against the peer's frame deadline."""
        if self._room.is_set() or self._end is not None:
            return
        guard = self._conn.guard
        started = trio.current_time()
        deadline = guard.auth_deadline
        with trio.move_on_at(math.inf if deadline is None else deadline):
            await self._room.wait()
        now = trio.current_time()
        guard.paused(now - started)
        if guard.check(now) is not None:
            self._conn.close(guard.expired or "deadline", now)

    async def _expire(self, reason: str) -> None:
        """A guard deadline passed: the CLOSE is queued; flush it (briefly) and end."""
        with trio.move_on_after(CLOSE_FLUSH_TIMEOUT), suppress_transport():
            await self._flush()
        self._finish(DeadlineExpired(f"closed by this side: {reason}"))

    async def _run_reader(self) -> None:
        conn = self._conn
        try:
            self._dispatch(self._pending)
            self._pending = []
            await self._wait_for_room()
            while self._end is None:
                if conn.guard.expired is not None:
                    await self._expire(conn.guard.expired)
                    break
                conn.raise_pending_error()
                fd = self._may_park()
                if fd is not None:
                    events = await self._park(fd)
                    now = trio.current_time()
                else:
                    data = await self._receive(conn.next_deadline())
                    now = trio.current_time()
                    if data is None:
                        events = conn.handle_timeout(now)
                    else:
                        events = conn.receive_data(data, now)
                messages = any(isinstance(event, Message) for event in events)
                if messages or fd is None:  # (woken with nothing: the hub already judged)
                    self._woken(messages, now)
                self._dispatch(events)
                await self._reader_flush()
                await self._wait_for_room()
        except RemoteProtocolError as exc:
            conn.close(f"protocol error: {exc}", trio.current_time())
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT), suppress_transport():
                await self._flush()
            end = LinkProtocolError(f"protocol error from peer: {exc}")
            end.__cause__ = exc
            self._finish(end)
        except LinkEnded:
            pass  # _flush already recorded the reason
        except TRANSPORT_ERRORS as exc:
            self._finish(LinkBroken(f"transport failed: {exc!r}"))
        finally:
            if self._end is not None and not isinstance(self._end, LinkClosedLocally):
                await trio.aclose_forcefully(self._stream)
