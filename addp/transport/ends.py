"""How a link ends: what a broken stream raises, and the reason a loss or a CLOSE becomes."""

from __future__ import annotations

import trio

from .._errors import AddpTimeout, LinkClosedByPeer, LinkEnded
from .._events import ConnectionClosed, PeerLostEvent
from .._peer_text import peer_text

__all__ = ["TRANSPORT_ERRORS", "end_reason", "suppress_transport"]

#: What a broken or closed stream raises.
TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def end_reason(event: PeerLostEvent | ConnectionClosed) -> LinkEnded:
    """The :class:`LinkEnded` that a keep-alive loss or the peer's CLOSE frame becomes."""
    if isinstance(event, PeerLostEvent):
        return AddpTimeout(
            f"ADDP timeout: no answer to poll #{event.seq} within "
            f"{event.timeout:g} s ({event.silence:.3f} s of silence)"
        )
    return LinkClosedByPeer(f"closed by peer: {peer_text(event.reason, 300)}")


class suppress_transport:
    """A context manager that swallows a broken transport or an ended link (closing paths)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, (*TRANSPORT_ERRORS, LinkEnded))
