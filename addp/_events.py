"""Events a :class:`~addp.Connection` returns to its caller: frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both HELLOs are exchanged; application messages may flow.

    Attributes:
        version: the protocol version both sides speak on this link.
        peer_hello: the application hello the peer sent (any msgpack value).
        local_timeout: the ADDP timeout this side now runs (0 = off).
        peer_timeout: the timeout this side asked the peer to run.
        trace: whether this side writes ADDP trace lines on this link.
    """

    version: int
    peer_hello: Any
    local_timeout: float
    peer_timeout: float
    trace: bool


@dataclass(frozen=True, slots=True)
class Message:
    """One application message from the peer."""

    payload: Any


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the link: a CLOSE frame (with its reason) or end of stream."""

    reason: str


@dataclass(frozen=True, slots=True)
class PeerLostEvent:
    """ADDP declared the peer lost: silent, then no answer to a poll in time."""

    silence: float
    timeout: float
    seq: int


@dataclass(frozen=True, slots=True)
class Trace:
    """One ADDP trace line for this side's log."""

    line: str


#: Everything :meth:`Connection.receive_data` and :meth:`Connection.handle_timeout` return.
Event = HandshakeComplete | Message | ConnectionClosed | PeerLostEvent | Trace
