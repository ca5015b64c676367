"""The ADDP keep-alive timer of one side of a link: a pure state machine.

Fed "bytes received at t", "frame sent at t" and "time is t"; answers what to
send (a poll), whether the peer is lost, and its next deadline. It never reads
a clock or sleeps, so it runs the same under trio's MockClock, a simulation or
a real socket.

Semantics (as Genesys documents them): with timeout ``T`` this side polls
only after ``T`` of silence from the peer, and declares the peer lost when no
byte arrives within ``T`` after the poll. Any byte from the peer resets the
timer. ``T = 0`` turns this side off. A silent peer is therefore declared lost
``2T`` after the last byte it sent when deadlines are served on time (later
only by the lateness of the caller); measured from the moment the peer fell
silent for good, detection takes between ``T`` and ``2T``.

One refinement saves a poll per link and interval: when the last bytes from
the peer carried a POLL (:meth:`Keepalive.poll_received`), the peer runs a
timer of its own and will poll again about ``T`` after our REPLY reached it;
this side then waits ``T + T/4`` of silence before polling, and the wait for an
answer shrinks by as much (``3T/4``), so the peer is still declared lost ``2T``
after its last byte. With equal timeouts on both ends, one side polls and the
other only answers, instead of both polling at almost the same time.

A side that :attr:`Keepalive.yields` (the connecting end of a connection)
waits ``T + T/4`` after any bytes, not only after a POLL: when both ends poll
at the same moment (the first polls after the handshake, or an application
request and its answer restarting both timers a round trip apart) the other
end polls first from then on, so it is the one end of the link that polls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: When the last bytes from the peer carried a POLL, this side polls after
#: ``T * (1 + POLL_DEFERRAL)`` of silence and waits ``T * (1 - POLL_DEFERRAL)``
#: for an answer (the loss is still due ``2T`` after the last byte).
POLL_DEFERRAL = 0.25


class KeepaliveState(enum.Enum):
    """Where the keep-alive timer of one side stands."""

    #: Timeout 0: this side never polls.
    OFF = "off"
    #: Waiting for ``T`` of silence before polling.
    WATCHING = "watching"
    #: A poll is out; the peer must send something within ``T``.
    POLLING = "polling"
    #: The peer was declared lost; terminal.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class SendPoll:
    """Action: send ADDP poll number ``seq`` now."""

    seq: int
    silence: float


@dataclass(frozen=True, slots=True)
class PeerLost:
    """Action: the peer is lost; ``silence`` seconds passed since its last byte."""

    silence: float
    seq: int
    timeout: float


@dataclass(frozen=True, slots=True)
class KeepaliveStatistics:
    """Counters for status displays and traces."""

    polls_sent: int
    replies_received: int
    last_rtt: float | None
    last_received: float
    last_sent: float | None


class Keepalive:
    """The keep-alive timer of one side of one link (see module docstring)."""

    __slots__ = (
        "_answer_wait",
        "_deadline",
        "_last_rtt",
        "_last_rx",
        "_last_tx",
        "_poll_sent_at",
        "_polls",
        "_replies",
        "_seq",
        "_state",
        "_timeout",
        "yields",
    )

    def __init__(self, timeout: float, now: float, *, yields: bool = False) -> None:
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, got {timeout}")
        self._timeout = timeout
        self._last_rx = now
        self._last_tx: float | None = None
        self._seq = 0
        self._polls = 0
        self._replies = 0
        self._last_rtt: float | None = None
        self._poll_sent_at = 0.0
        self._state = KeepaliveState.WATCHING if timeout > 0 else KeepaliveState.OFF
        self._deadline: float | None = now + timeout if timeout > 0 else None
        #: How long the poll now due will wait for an answer (T, or less when deferred).
        self._answer_wait = timeout
        #: Whether this side leaves the polling to its peer: every wait deferred.
        self.yields = yields
        if timeout > 0:
            self._watch(now, yields)

    @property
    def state(self) -> KeepaliveState:
        """The current :class:`KeepaliveState`."""
        return self._state

    @property
    def timeout(self) -> float:
        """The timeout in force, in seconds (0 = off)."""
        return self._timeout

    @property
    def last_received(self) -> float:
        """Time of the last byte from the peer (or of the start)."""
        return self._last_rx

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called; ``None`` if never."""
        return self._deadline

    def bytes_received(self, now: float) -> None:
        """Any traffic from the peer: it is alive, restart the silence timer."""
        if self._state is KeepaliveState.LOST:
            return
        self._last_rx = now
        if self._state is not KeepaliveState.OFF:
            self._state = KeepaliveState.WATCHING
            self._watch(now, self.yields)

    def _watch(self, now: float, deferred: bool) -> None:
        deferral = self._timeout * POLL_DEFERRAL if deferred else 0.0
        self._deadline = now + self._timeout + deferral
        self._answer_wait = self._timeout - deferral

    def poll_received(self, now: float) -> None:
        """A POLL arrived at ``now`` (after :meth:`bytes_received` for its bytes): the
        peer polls on its own, so this side defers its own poll by ``T/4`` and waits
        as much less for the answer (the loss stays due ``2T`` after this byte)."""
        if self._state is not KeepaliveState.WATCHING:
            return
        self._last_rx = now
        self._watch(now, True)

    def reply_received(self, seq: int, now: float) -> float | None:
        """A REPLY frame arrived; returns the round-trip time if it answers our last poll."""
        self.bytes_received(now)
        if seq == self._seq and self._polls:
            self._replies += 1
            self._last_rtt = now - self._poll_sent_at
            return self._last_rtt
        return None

    def frame_sent(self, now: float) -> None:
        """This side sent a frame. Sending proves nothing about the peer; kept for statistics."""
        self._last_tx = now

    def handle_timeout(self, now: float, *, early: float = 0.0) -> SendPoll | PeerLost | None:
        """Time is ``now``: poll, declare the peer lost, or do nothing yet.

        ``early``: a poll due within that many seconds goes now (a caller serving
        many links' polls together on a coarse grid). The peer is still never
        declared lost sooner than ``2T`` after its last byte: the wait for the
        answer is longer by as much as the poll was early.
        """
        if self._deadline is None:
            return None
        if self._state is KeepaliveState.WATCHING:
            if now < self._deadline - early:
                return None
            self._seq += 1
            self._polls += 1
            self._poll_sent_at = now
            self._state = KeepaliveState.POLLING
            # On time or late: T (3T/4 when deferred) from now; early: 2T after the last byte.
            lost_at = self._deadline + self._answer_wait
            self._deadline = max(now + self._answer_wait, lost_at)
            return SendPoll(seq=self._seq, silence=now - self._last_rx)
        if now < self._deadline:
            return None
        # POLLING: nothing came back within the timeout.
        self._state = KeepaliveState.LOST
        self._deadline = None
        return PeerLost(silence=now - self._last_rx, seq=self._seq, timeout=self._timeout)

    def reconfigure(self, timeout: float, now: float) -> None:
        """Change the timeout (e.g. once the peer's wish is known), restarting the timer."""
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, got {timeout}")
        if self._state is KeepaliveState.LOST:
            return
        self._timeout = timeout
        if timeout > 0:
            self._state = KeepaliveState.WATCHING
            self._watch(self._last_rx, self.yields)
        else:
            self._state = KeepaliveState.OFF
            self._deadline = None

    def statistics(self) -> KeepaliveStatistics:
        """Counters for status displays."""
        return KeepaliveStatistics(
            polls_sent=self._polls,
            replies_received=self._replies,
            last_rtt=self._last_rtt,
            last_received=self._last_rx,
            last_sent=self._last_tx,
        )
