"""The bounds of a server's client port and of an object, as an operator sets them.

``auth-timeout``, ``max-connections``, ``max-unauthenticated`` (the client
port) and ``max-object-size`` (every write), read from the server's section;
see :class:`~confserv.config.settings.ServerSettings`.
"""

from __future__ import annotations

from typing import Any

from addp import DEFAULT_MAX_FRAME_SIZE
from addp._frames import MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE

from .format import Section

#: Default ``auth-timeout``, seconds.
DEFAULT_AUTH_TIMEOUT = 5.0
#: Default ``max-connections`` (mind the process's open-file limit).
DEFAULT_MAX_CONNECTIONS = 2000
#: Default ``max-unauthenticated``.
DEFAULT_MAX_UNAUTHENTICATED = 256
#: Default ``max-object-size``, bytes (a quarter of the default frame limit).
DEFAULT_MAX_OBJECT_SIZE = 1024 * 1024
#: Room kept between ``max-object-size`` and ``max-frame-size`` for the message
#: around one object (a notification, a replicated change).
OBJECT_SIZE_MARGIN = 64 * 1024


def object_size_limit(max_frame_size: int) -> int:
    """The largest ``max-object-size`` a ``max-frame-size`` leaves room for: the
    frame limit less :data:`OBJECT_SIZE_MARGIN` (less half of it, when smaller)."""
    return max_frame_size - min(OBJECT_SIZE_MARGIN, max_frame_size // 2)


def parse_bounds(own: Section) -> dict[str, Any]:
    """``auth-timeout``, ``max-connections``, ``max-unauthenticated``, ``max-object-size``."""
    frame = own.integer(
        "max-frame-size",
        DEFAULT_MAX_FRAME_SIZE,
        low=MIN_MAX_FRAME_SIZE,
        high=MAX_MAX_FRAME_SIZE,
        what="a size in bytes",
    )
    object_limit = object_size_limit(frame)
    max_object = own.integer(
        "max-object-size",
        min(DEFAULT_MAX_OBJECT_SIZE, object_limit),
        low=1,
        high=MAX_MAX_FRAME_SIZE,
        what="a size in bytes",
    )
    if max_object > object_limit:
        raise own.error(
            "max-object-size",
            f"{own.text('max-object-size')!r} leaves no room in max-frame-size ({frame}): "
            f"make it at most {object_limit}",
        )
    connections = own.integer(
        "max-connections", DEFAULT_MAX_CONNECTIONS, low=1, high=1_000_000, what="a count"
    )
    return {
        "auth_timeout": own.seconds(
            "auth-timeout", DEFAULT_AUTH_TIMEOUT, low=0.0, high=3600.0, above_low=True
        ),
        "max_connections": connections,
        "max_unauthenticated": own.integer(
            "max-unauthenticated",
            min(DEFAULT_MAX_UNAUTHENTICATED, connections),
            low=1,
            high=1_000_000,
            what="a count",
        ),
        "max_object_size": max_object,
    }
