"""One side of an ADDP link as a sans-IO object: frames, handshake and keep-alive.

The caller feeds it bytes and the time, takes the events it returns, and
writes out whatever :meth:`Connection.data_to_send` hands back. It never
touches a socket or a clock, in the h11 manner.
"""

from __future__ import annotations

import enum
from typing import Any

from ._errors import (
    HandshakeError,
    LocalProtocolError,
    MalformedPayloadError,
    MessageTooLargeError,
    RemoteProtocolError,
    UnexpectedFrameError,
)
from ._events import ConnectionClosed, Event, HandshakeComplete, Message, PeerLostEvent, Trace
from ._frames import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    MAX_MAX_FRAME_SIZE,
    FrameDecoder,
    FrameKind,
    decode_payload,
    encode_frame,
    encode_payload,
    keepalive_frame,
    keepalive_seq,
    reply_to_poll,
    single_message,
)
from ._guard import DEFAULT_FRAME_TIMEOUT, ConnectionGuard
from ._hello import combine_timeouts, hello_payload, read_hello
from ._keepalive import Keepalive, PeerLost, SendPoll
from ._options import AddpOptions
from ._peer_text import peer_text


class ConnectionState(enum.Enum):
    """Lifecycle of a :class:`Connection`."""

    #: Created; :meth:`Connection.start` not called yet.
    IDLE = "idle"
    #: Our HELLO is queued; waiting for the peer's.
    HANDSHAKE = "handshake"
    #: Application messages flow both ways.
    OPEN = "open"
    #: Closed by either side, or the peer was lost.
    CLOSED = "closed"
    #: The peer broke the protocol; nothing more is accepted.
    ERROR = "error"


#: The one state a frame may be written in (looked up once, not per subscriber).
_OPEN = ConnectionState.OPEN

#: Longest CLOSE reason sent; longer ones are cut (they may quote peer input).
MAX_REASON = 300


class Connection:
    """One side of a link (see module docstring).

    Args:
        options: this side's ADDP options.
        hello: the application's own hello, carried in our HELLO frame.
        max_frame_size: the largest payload accepted from the peer.
        now: the current time, for the keep-alive timer.
        auth_timeout: seconds the peer has to be declared authenticated
            (:meth:`authenticate`); None: no such deadline.
        frame_timeout: seconds a frame may take from its first byte to its
            last; None: no such deadline.
        unauthenticated_frame_size: the largest payload accepted until
            :meth:`authenticate` (None: ``max_frame_size`` from the start).
            The HELLO still announces ``max_frame_size``.
        initiator: this side opened the connection: it leaves the polling to
            the accepting side, polling itself only after ``T + T/4`` of
            silence (``docs/protocol.md``, 5.3 rule 6).
    """

    def __init__(
        self,
        options: AddpOptions,
        *,
        hello: Any = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        now: float = 0.0,
        auth_timeout: float | None = None,
        frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
        unauthenticated_frame_size: int | None = None,
        initiator: bool = False,
    ) -> None:
        self.options = options
        self.hello = hello
        self.state = ConnectionState.IDLE
        self.version: int | None = None
        self.peer_hello: Any = None
        self.trace_enabled = options.enabled and options.trace.local
        self._decoder = FrameDecoder(max_frame_size)
        self._max_frame_size = self._decoder.max_frame_size
        if unauthenticated_frame_size is not None:
            self._decoder.max_frame_size = min(unauthenticated_frame_size, max_frame_size)
        self._keepalive = Keepalive(0.0, now)
        self._keepalive.yields = initiator
        self.guard = ConnectionGuard(now, auth_timeout=auth_timeout, frame_timeout=frame_timeout)
        self._out: list[bytes] = []
        self._sizes: list[int] = []
        self.peer_max_frame_size = MAX_MAX_FRAME_SIZE

    # -- outgoing -------------------------------------------------------------

    def start(self, now: float) -> None:
        """Queue our HELLO. Call once, before anything else is sent."""
        if self.state is not ConnectionState.IDLE:
            raise LocalProtocolError(f"start() called in state {self.state.name}")
        data = hello_payload(self.options, self._max_frame_size, self.hello)
        self._queue(FrameKind.HELLO, data, now)
        self.state = ConnectionState.HANDSHAKE

    def authenticate(self) -> None:
        """The application authenticated the peer: the authentication deadline is met
        and frames up to ``max_frame_size`` are accepted from now on."""
        self.guard.authenticate()
        self._decoder.max_frame_size = self._max_frame_size

    @property
    def frame_limit(self) -> int:
        """The largest payload accepted from the peer now."""
        return self._decoder.max_frame_size

    def take_message_sizes(self) -> list[int]:
        """The payload sizes of the :class:`Message` events returned since the last
        call, in order (for a caller that bounds its inbox in bytes)."""
        sizes, self._sizes = self._sizes, []
        return sizes

    def send(self, payload: Any, now: float) -> None:
        """Queue one application message."""
        self.send_encoded(encode_payload(payload), now)

    def send_encoded(self, data: bytes, now: float) -> None:
        """Queue one application message already encoded with :func:`encode_payload`.

        For fan-out: encode once, queue the same bytes on many connections.
        """
        if self.state is not ConnectionState.OPEN:
            raise LocalProtocolError(f"cannot send a message in state {self.state.name}")
        if len(data) > self.peer_max_frame_size:
            raise MessageTooLargeError(
                f"message of {len(data)} bytes exceeds the peer's limit of "
                f"{self.peer_max_frame_size} bytes"
            )
        self._queue(FrameKind.MESSAGE, data, now)

    def claim_direct_write(self, size: int, now: float) -> bool:
        """Whether the caller may itself write one MESSAGE frame of ``size`` payload bytes
        (``encode_frame(FrameKind.MESSAGE, data)``, the same bytes on many links: a
        fan-out). True: it is counted as sent, write it. False: nothing was counted,
        since the connection is not open or frames are queued that it would overtake;
        queue the message instead (:meth:`send_encoded`, which says what is wrong).
        Raises :class:`MessageTooLargeError`, before anything is counted (the frame
        must then not be written). One call, as cheap as it can be: a fan-out makes
        it once per subscriber."""
        if self.state is not _OPEN or self._out:
            return False
        if size > self.peer_max_frame_size:
            raise MessageTooLargeError(
                f"message of {size} bytes exceeds the peer's limit of "
                f"{self.peer_max_frame_size} bytes"
            )
        self._keepalive.frame_sent(now)
        return True

    def close(self, reason: str, now: float) -> None:
        """Queue a CLOSE frame with ``reason``; the connection accepts nothing more.

        Also allowed after a protocol error, so the peer is told what it did wrong.
        """
        if self.state in (ConnectionState.HANDSHAKE, ConnectionState.OPEN, ConnectionState.ERROR):
            if len(reason) > MAX_REASON:
                reason = reason[: MAX_REASON - 3] + "..."
            reason = peer_text(reason, MAX_REASON)  # no control characters either
            self._queue(FrameKind.CLOSE, encode_payload({"reason": reason}), now)
        self.state = ConnectionState.CLOSED

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` would return bytes."""
        return bool(self._out)

    @property
    def bytes_to_send(self) -> int:
        """How many bytes :meth:`data_to_send` would return."""
        return sum(len(frame) for frame in self._out)

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer since the last call (possibly empty)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _queue(self, kind: FrameKind, payload: bytes, now: float) -> None:
        self._out.append(encode_frame(kind, payload))
        self._keepalive.frame_sent(now)

    # -- incoming -------------------------------------------------------------

    def raise_pending_error(self) -> None:
        """Raise a protocol error that arrived behind frames already returned.

        :meth:`receive_data` hands back the good frames that came before a
        defect; the caller then calls this (before waiting for more bytes) so
        that the defect is not left waiting for the next chunk.
        """
        error = self._decoder.pending_error
        if error is not None and not self.closed:
            self.state = ConnectionState.ERROR
            raise error

    @property
    def pending_error(self) -> Exception | None:
        """The protocol error :meth:`raise_pending_error` would raise, if any."""
        return None if self.closed else self._decoder.pending_error

    @property
    def closed(self) -> bool:
        """Whether the connection is over (closed, lost or failed)."""
        return self.state in (ConnectionState.CLOSED, ConnectionState.ERROR)

    def receive_data(self, data: bytes | bytearray, now: float) -> list[Event]:
        """Feed bytes from the peer (``b""`` means end of stream); returns the events.

        Raises:
            RemoteProtocolError: the peer broke the protocol. The connection
                is in state ERROR afterwards; drop it.
        """
        if self.state in (ConnectionState.CLOSED, ConnectionState.ERROR):
            return []
        if not data:
            self.state = ConnectionState.CLOSED
            return [ConnectionClosed("end of stream")]
        decoder = self._decoder
        if self.state is _OPEN and not self.trace_enabled and not decoder.buffered:
            # The two shapes nearly every read has: one whole MESSAGE (a request, an
            # answer, a notification) or one keep-alive frame.
            if decoder.pending_error is None and single_message(data, decoder.max_frame_size):
                return self._message_fast_path(data, now)
            if self._keepalive_fast_path(data, now):
                return []
        self._keepalive.bytes_received(now)
        events: list[Event] = []
        try:
            frames = self._decoder.feed(data)
            self.guard.bytes_received(now, buffered=self._decoder.buffered, completed=len(frames))
            for kind, payload in frames:
                self._handle_frame(kind, payload, now, events)
                if self.closed:
                    break
        except RemoteProtocolError:
            self.state = ConnectionState.ERROR
            raise
        return events

    def _keepalive_fast_path(self, data: bytes | bytearray, now: float) -> bool:
        """``data`` is exactly one POLL or REPLY frame whose payload is a msgpack
        unsigned int (what idle links carry): handle it as the general path would
        (same state, same REPLY bytes) without the decoder and msgpack; True if so."""
        keepalive = keepalive_frame(data)
        if keepalive is None:
            return False
        kind, seq = keepalive
        self._keepalive.bytes_received(now)
        self.guard.bytes_received(now, buffered=0, completed=1)
        if kind == FrameKind.POLL:
            self._out.append(reply_to_poll(data))
            self._keepalive.frame_sent(now)
            self._keepalive.poll_received(now)
        else:
            self._keepalive.reply_received(seq, now)
        return True

    def _message_fast_path(self, data: bytes | bytearray, now: float) -> list[Event]:
        """``data`` is exactly one whole MESSAGE frame within the limit (what most reads
        hand over: a request, an answer, a notification): the same events and state as
        the general path, without the decoder's buffer and frame list."""
        self._keepalive.bytes_received(now)
        self.guard.bytes_received(now, buffered=0, completed=1)
        payload = bytes(data[HEADER_SIZE:])
        try:
            value = decode_payload(payload)
        except RemoteProtocolError:
            self.state = ConnectionState.ERROR
            raise
        self._sizes.append(len(payload))
        return [Message(value)]

    def _handle_frame(self, kind: FrameKind, payload: bytes, now: float, out: list[Event]) -> None:
        value = decode_payload(payload)
        if self.state is ConnectionState.HANDSHAKE and kind is not FrameKind.HELLO:
            raise UnexpectedFrameError(f"{kind.name} frame before the peer's HELLO")
        if kind is FrameKind.MESSAGE:
            if self.state is not ConnectionState.OPEN:
                raise UnexpectedFrameError("MESSAGE frame before the handshake completed")
            out.append(Message(value))
            self._sizes.append(len(payload))
        elif kind is FrameKind.POLL:
            seq = keepalive_seq(value, "POLL")
            self._queue(FrameKind.REPLY, payload, now)
            self._keepalive.poll_received(now)
            if self.trace_enabled:
                out.append(Trace(f"<-AP[{seq}] poll received, -AR[{seq}]-> reply sent"))
        elif kind is FrameKind.REPLY:
            seq = keepalive_seq(value, "REPLY")
            rtt = self._keepalive.reply_received(seq, now)
            if self.trace_enabled:
                took = f" after {rtt * 1000:.1f} ms" if rtt is not None else " (stale)"
                out.append(Trace(f"<-AR[{seq}] reply received{took}"))
        elif kind is FrameKind.HELLO:
            out.append(self._handle_hello(value, now))
        else:  # FrameKind.CLOSE
            reason = value.get("reason") if isinstance(value, dict) else None
            if not isinstance(reason, str):
                raise MalformedPayloadError("CLOSE payload must be a map with a string 'reason'")
            self.state = ConnectionState.CLOSED
            out.append(ConnectionClosed(reason))

    def _handle_hello(self, value: Any, now: float) -> HandshakeComplete:
        if self.state is not ConnectionState.HANDSHAKE:
            raise HandshakeError(f"HELLO received in state {self.state.name}")
        hello = read_hello(value)
        self.version = hello.version
        self.peer_max_frame_size = hello.max_frame_size
        self.peer_hello = hello.app
        local = self.options.enabled and self.options.trace.local
        self.trace_enabled = local or hello.remote_trace
        timeout = combine_timeouts(self.options.local_timeout, hello.pushed_timeout)
        self._keepalive.reconfigure(timeout, now)
        self.state = ConnectionState.OPEN
        return HandshakeComplete(
            version=hello.version,
            peer_hello=self.peer_hello,
            local_timeout=timeout,
            peer_timeout=self.options.requested_remote_timeout,
            trace=self.trace_enabled,
        )

    # -- time -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called; ``None`` if never."""
        if self.state is not ConnectionState.OPEN:
            return None
        if self.guard.idle:
            return self._keepalive.next_deadline()
        keepalive, guard = self._keepalive.next_deadline(), self.guard.next_deadline()
        if keepalive is None or guard is None:
            return guard if keepalive is None else keepalive
        return min(keepalive, guard)

    def handle_timeout(self, now: float, *, early: float = 0.0) -> list[Event]:
        """Time is ``now``: may queue a POLL, or report the peer lost (``early``: as
        :meth:`Keepalive.handle_timeout`'s).

        A :attr:`guard` deadline that passed (not authenticated in time, a frame
        not completed in time) queues a CLOSE naming it and returns nothing:
        :attr:`guard` ``.expired`` then says why the connection is over.
        """
        if self.state is not ConnectionState.OPEN:
            return []
        reason = self.guard.check(now)
        if reason is not None:
            self.close(reason, now)
            return []
        action = self._keepalive.handle_timeout(now, early=early)
        if isinstance(action, SendPoll):
            self._queue(FrameKind.POLL, encode_payload(action.seq), now)
            if self.trace_enabled:
                line = f"-AP[{action.seq}]-> poll sent after {action.silence:.3f} s silence"
                return [Trace(line)]
        elif isinstance(action, PeerLost):
            self.state = ConnectionState.CLOSED
            lost = PeerLostEvent(silence=action.silence, timeout=action.timeout, seq=action.seq)
            if self.trace_enabled:
                line = (
                    f"poll #{action.seq} unanswered: peer lost after {action.silence:.3f} s silence"
                )
                return [Trace(line), lost]
            return [lost]
        return []

    @property
    def keepalive(self) -> Keepalive:
        """The keep-alive timer, for statistics."""
        return self._keepalive
