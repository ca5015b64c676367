"""The HELLO frame of the handshake (``docs/protocol.md``, 5.2): what one side
announces, and the checks on what the peer announced (pure).

:class:`~addp.Connection` sends :func:`hello_payload` first and reads the
peer's with :func:`read_hello`; what the two agree on (version, timeouts,
frame limit, trace) is the connection's from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import HandshakeError, LocalProtocolError
from ._frames import MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE, encode_payload
from ._options import MAX_TIMEOUT, AddpOptions
from ._peer_text import peer_repr

#: Protocol versions this implementation speaks (inclusive range).
PROTOCOL_VERSIONS = (1, 1)
#: Largest HELLO payload, so it fits the smallest frame limit a peer may announce.
MAX_HELLO_SIZE = MIN_MAX_FRAME_SIZE


def combine_timeouts(own: float, pushed: float) -> float:
    """The timeout a side runs: the smaller of its own and the peer's wish, ignoring zeros."""
    wishes = [t for t in (own, pushed) if t > 0]
    return min(wishes) if wishes else 0.0


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds; a nonzero value never rounds down to 0 (off)."""
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def hello_payload(options: AddpOptions, max_frame_size: int, app: Any) -> bytes:
    """The msgpack payload of this side's HELLO: versions, the timeout pushed to the
    peer, remote trace, the largest frame accepted, and the application's hello.

    Raises:
        LocalProtocolError: it would exceed :data:`MAX_HELLO_SIZE` (a large ``app``).
    """
    data = encode_payload(
        {
            "versions": list(PROTOCOL_VERSIONS),
            "remote-timeout": _ms(options.requested_remote_timeout),
            "remote-trace": options.enabled and options.trace.remote,
            "max-frame-size": max_frame_size,
            "app": app,
        }
    )
    if len(data) > MAX_HELLO_SIZE:
        raise LocalProtocolError(
            f"HELLO of {len(data)} bytes exceeds {MAX_HELLO_SIZE} bytes: keep the "
            "application hello small"
        )
    return data


@dataclass(frozen=True)
class PeerHello:
    """What a well-formed HELLO of the peer announced."""

    #: The highest protocol version both sides speak.
    version: int
    #: The keep-alive timeout the peer asks this side to run (seconds; 0: none).
    pushed_timeout: float
    #: The largest payload the peer accepts.
    max_frame_size: int
    #: Whether the peer asks this side to trace the keep-alive.
    remote_trace: bool
    #: The peer application's hello.
    app: Any


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_hello(value: Any) -> PeerHello:
    """Check the decoded payload of the peer's HELLO.

    Raises:
        HandshakeError: naming the field that is wrong, or no common version.
    """
    if not isinstance(value, dict):
        raise HandshakeError("HELLO payload must be a map")
    versions = value.get("versions")
    if (
        not isinstance(versions, list)
        or len(versions) != 2
        or not all(_int(v) for v in versions)
        or versions[0] > versions[1]
    ):
        raise HandshakeError(
            f"HELLO 'versions' must be [min, max] integers, got {peer_repr(versions)}"
        )
    low, high = max(versions[0], PROTOCOL_VERSIONS[0]), min(versions[1], PROTOCOL_VERSIONS[1])
    if low > high:
        raise HandshakeError(
            f"no protocol version in common: we speak {PROTOCOL_VERSIONS[0]}-"
            f"{PROTOCOL_VERSIONS[1]}, the peer {versions[0]}-{versions[1]}"
        )
    pushed_ms = value.get("remote-timeout", 0)
    if not _int(pushed_ms) or not 0 <= pushed_ms <= MAX_TIMEOUT * 1000:
        raise HandshakeError(
            f"HELLO 'remote-timeout' must be 0 to 3600000 ms, got {peer_repr(pushed_ms)}"
        )
    peer_max = value.get("max-frame-size", MAX_MAX_FRAME_SIZE)
    if not _int(peer_max) or not MIN_MAX_FRAME_SIZE <= peer_max <= MAX_MAX_FRAME_SIZE:
        raise HandshakeError(f"HELLO 'max-frame-size' out of range: {peer_repr(peer_max)}")
    remote_trace = value.get("remote-trace", False)
    if not isinstance(remote_trace, bool):
        raise HandshakeError(
            f"HELLO 'remote-trace' must be a boolean, got {peer_repr(remote_trace)}"
        )
    return PeerHello(high, pushed_ms / 1000, peer_max, remote_trace, value.get("app"))
