"""ADDP: framed messages and the Advanced Disconnect Detection Protocol keep-alive.

The sans-IO core (:class:`Connection`, :class:`Keepalive`, :class:`FrameDecoder`)
knows no sockets or clocks, and importing this package loads no trio; the thin
trio adapter (:class:`~addp.transport.Link`, :func:`~addp.transport.connect`,
:func:`~addp.transport.serve`) is :mod:`addp.transport`. This package imports
nothing from ``confserv`` or ``scs``. The wire format is specified in ``docs/protocol.md``.
"""

from ._connection import Connection, ConnectionState
from ._errors import (
    AddpError,
    AddpTimeout,
    BadFlagsError,
    BadMagicError,
    FrameTooLargeError,
    HandshakeError,
    LinkBroken,
    LinkClosedByPeer,
    LinkClosedLocally,
    LinkEnded,
    LinkProtocolError,
    LocalProtocolError,
    MalformedPayloadError,
    MessageTooLargeError,
    OptionError,
    RemoteProtocolError,
    UnexpectedFrameError,
    UnknownFrameKindError,
)
from ._events import ConnectionClosed, Event, HandshakeComplete, Message, PeerLostEvent, Trace
from ._frames import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    MAGIC,
    FrameDecoder,
    FrameKind,
    decode_payload,
    encode_frame,
    encode_payload,
)
from ._guard import DEFAULT_FRAME_TIMEOUT, ConnectionGuard
from ._hello import PROTOCOL_VERSIONS, combine_timeouts
from ._keepalive import Keepalive, KeepaliveState, KeepaliveStatistics, PeerLost, SendPoll
from ._options import (
    MAX_TIMEOUT,
    OPTION_NAMES,
    AddpOptions,
    TraceMode,
    parse_protocol,
    parse_timeout,
    parse_trace,
)
from ._peer_text import peer_repr, peer_text

__all__ = [
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_TIMEOUT",
    "OPTION_NAMES",
    "PROTOCOL_VERSIONS",
    "AddpError",
    "AddpOptions",
    "AddpTimeout",
    "BadFlagsError",
    "BadMagicError",
    "Connection",
    "ConnectionClosed",
    "ConnectionGuard",
    "ConnectionState",
    "Event",
    "FrameDecoder",
    "FrameKind",
    "FrameTooLargeError",
    "HandshakeComplete",
    "HandshakeError",
    "Keepalive",
    "KeepaliveState",
    "KeepaliveStatistics",
    "LinkBroken",
    "LinkClosedByPeer",
    "LinkClosedLocally",
    "LinkEnded",
    "LinkProtocolError",
    "LocalProtocolError",
    "MalformedPayloadError",
    "Message",
    "MessageTooLargeError",
    "OptionError",
    "PeerLost",
    "PeerLostEvent",
    "RemoteProtocolError",
    "SendPoll",
    "Trace",
    "TraceMode",
    "UnexpectedFrameError",
    "UnknownFrameKindError",
    "combine_timeouts",
    "decode_payload",
    "encode_frame",
    "encode_payload",
    "parse_protocol",
    "parse_timeout",
    "parse_trace",
    "peer_repr",
    "peer_text",
]
