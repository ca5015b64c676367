"""The trio link around :class:`~addp.Connection`: one reader task, FIFO writes.

One reader task per link feeds received bytes and the trio clock into the
sans-IO connection, serves its deadlines with ``move_on_at``, flushes what it
queues (polls, replies) and hands application messages to the caller through
a bounded channel. Writes go out under a FIFO lock. When the link ends the
reader records why, and every later ``receive``/``send`` raises that reason
as a :class:`~addp.LinkEnded` subclass. :mod:`addp.transport` (this
subpackage) is the only part of ``addp`` that imports trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from .._errors import (
    LinkClosedLocally,
    LinkEnded,
)
from .._frames import encode_payload
from .ends import suppress_transport
from .link_core import (  # (re-exported: the link's constants and end reasons)
    CLOSE_FLUSH_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    FAST_RECEIVES,
    INBOX_BYTES,
    INBOX_SIZE,
    RECEIVE_SIZE,
    DeadlineExpired,
    HandshakeTimeout,
    LinkCore,
)

__all__ = [
    "CLOSE_FLUSH_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "FAST_RECEIVES",
    "INBOX_BYTES",
    "INBOX_SIZE",
    "RECEIVE_SIZE",
    "DeadlineExpired",
    "HandshakeTimeout",
    "Link",
]


class Link(LinkCore):
    """An open, handshaken link: ``send`` messages, ``receive`` or iterate them.

    Created by :func:`open_link`, :func:`connect` or :func:`serve`; not by hand.
    Iteration stops quietly after this side closed the link and raises the
    :class:`~addp.LinkEnded` subclass that says why in every other case.
    """

    @property
    def peer_hello(self) -> Any:
        """The application hello the peer sent in its HELLO frame."""
        return self._conn.peer_hello

    @property
    def local_timeout(self) -> float:
        """The ADDP timeout this side runs on this link (0 = off)."""
        return self._conn.keepalive.timeout

    @property
    def ended(self) -> LinkEnded | None:
        """Why the link ended, or ``None`` while it is up."""
        return self._end

    @property
    def authenticated(self) -> bool:
        """Whether no authentication deadline is pending on this link."""
        return self._conn.guard.authenticated

    def authenticate(self) -> None:
        """The application authenticated the peer: its deadline is met, and frames up
        to the full ``max_frame_size`` and the full inbox are accepted from now on."""
        if self._conn.guard.authenticated:
            return
        self._conn.authenticate()
        if self._has_room():
            self._room.set()
        if self.on_authenticated is not None:
            self.on_authenticated()

    @contextmanager
    def authenticating(self) -> Iterator[None]:
        """The application is checking the peer's credentials (a password hash) for the
        block's duration: a port at its cap of unauthenticated connections does not
        close this one to make room meanwhile (see :func:`~addp.transport.serve`)."""
        if self.on_authenticating is not None:
            self.on_authenticating(True)
        try:
            yield
        finally:
            if self.on_authenticating is not None:
                self.on_authenticating(False)

    async def wait_ended(self) -> LinkEnded:
        """Wait until the link ends; returns the reason."""
        await self._ended.wait()
        assert self._end is not None
        return self._end

    async def send(self, message: Any) -> None:
        """Send one application message and wait until it is written to the stream.

        Raises:
            LinkEnded: the link is over (the subclass says why).
            MessageTooLargeError: the message exceeds the peer's frame limit.
        """
        self.send_nowait(message)
        await self._flush()

    def send_nowait(self, message: Any) -> None:
        """Queue one message; it is written by the next :meth:`flush` or :meth:`send`.

        For bursts (a streamed read, a fan-out): queue many, then flush once,
        so that they share one write.

        Raises:
            LinkEnded: the link is over (the subclass says why).
            MessageTooLargeError: the message exceeds the peer's frame limit.
        """
        self.send_encoded_nowait(encode_payload(message))

    def send_encoded_nowait(self, data: bytes) -> None:
        """Queue one message already encoded with :func:`~addp.encode_payload`.

        The same bytes may be queued on many links (one encoding per fan-out).
        """
        if self._end is not None:
            raise self._end
        if self._conn.closed:
            # The reader saw the end but has not recorded it yet (it may still be
            # handing earlier messages to a full inbox).
            raise self._closing or LinkClosedLocally("link is closing")
        self._conn.send_encoded(data, trio.current_time())

    def send_frame_nowait(self, data: bytes, frame: bytes, now: float | None = None) -> bool:
        """Send one message already encoded (``data``, from :func:`~addp.encode_payload`)
        whose frame is ``frame`` (``encode_frame(FrameKind.MESSAGE, data)``), without
        waiting: for a publisher fanning one message out to many links, which
        builds both once (and may read the clock once for all: ``now``, the
        trio time; read here when None). When nothing is queued on the link, the frame goes
        straight to the socket (no copy, no queue); otherwise, or on a stream
        that is not a plain socket, it is queued and written as
        :meth:`write_nowait` would. True if the socket took all of it; False:
        the rest waits for the next :meth:`flush` (the caller sees one runs).

        Raises:
            LinkEnded: the link is over (the subclass says why).
            MessageTooLargeError: the message exceeds the peer's frame limit.
        """
        fd = self._fd
        if (
            fd is None
            or self._end is not None
            or self._backlog
            or self._send_lock.locked()
            or not self._conn.claim_direct_write(
                len(data), trio.current_time() if now is None else now
            )
        ):
            self.send_encoded_nowait(data)
            return self.write_nowait()
        written = self._write_some(fd, frame)
        if written is None:
            raise self._end  # type: ignore[misc]
        if written < len(frame):
            self._backlog += frame[written:]
            return False
        return True

    @property
    def unsent(self) -> int:
        """Bytes queued on this link and not yet handed to the socket."""
        return len(self._backlog) + self._conn.bytes_to_send

    async def flush(self) -> None:
        """Write everything queued by :meth:`send_nowait`."""
        if self._end is not None:
            raise self._end
        await self._flush()

    def set_router(self, router: Callable[[Any], None]) -> None:
        """Hand every application message to ``router`` as it arrives, instead of the inbox.

        ``router`` runs in whichever task read the message (the reader, or the
        process's hub for a parked link), so it must not block: it files the
        message where its consumer waits (a memory channel). Messages already
        in the inbox go to it first, in order. From then on :meth:`receive`
        only reports the link's end, and the inbox's back-pressure is the
        router's to keep (a full channel of its own ends the link, say). A
        router that raises ends the reader with that error.
        """
        while True:
            try:
                message, size = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._taken(size)
            router(message)
        self._router = router

    async def receive(self) -> Any:
        """The next application message from the peer.

        Messages already buffered are handed over without a trip through the
        scheduler (a full yield every :data:`FAST_RECEIVES` of them keeps the
        consumer from starving other tasks).

        Raises:
            LinkEnded: the link is over (the subclass says why).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            try:
                message, size = self._inbox.receive_nowait()
            except trio.WouldBlock:
                self._fast = 0
                message, size = await self._inbox.receive()
                self._taken(size)
                return message
        except trio.EndOfChannel:
            assert self._end is not None
            raise self._end from None
        self._taken(size)
        self._fast += 1
        if self._fast >= FAST_RECEIVES:
            self._fast = 0
            await trio.lowlevel.cancel_shielded_checkpoint()
        return message

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except LinkClosedLocally:
            raise StopAsyncIteration from None

    async def aclose(self, reason: str = "closed") -> None:
        """Send CLOSE with ``reason`` (best effort) and close the stream."""
        if self._end is None:
            self._conn.close(reason, trio.current_time())
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT) as scope:
                scope.shield = True
                with suppress_transport():
                    await self._flush()
            self._finish(LinkClosedLocally(f"closed by this side: {reason}"))
        await trio.aclose_forcefully(self._stream)

    async def abort(self, reason: str) -> None:
        """Close the stream at once, without CLOSE: for a peer that reads nothing.

        Also the only clean end after a write was cancelled half-way (a CLOSE
        frame would land in the middle of a frame).
        """
        self._finish(LinkClosedLocally(f"aborted by this side: {reason}"))
        await trio.aclose_forcefully(self._stream)
