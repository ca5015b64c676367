"""The bounds of a server's client port and of an object, as an operator sets them.

``auth-timeout``, ``max-connections``, ``max-unauthenticated`` (the client
port) and ``max-object-size`` (every write), read from the server's section;
see :class:`~confserv.config.settings.ServerSettings`.
"""

from __future__ import annotations

from typing import Any

from addp import DEFAULT_MAX_FRAME_SIZE
from addp._frames import MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE
from addp.optionspec import OptionSpec, OptionTable

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


#: ``max-frame-size`` (read by the settings) and the options :func:`parse_bounds` reads.
BOUNDS_TABLE = OptionTable.of(
    OptionSpec(
        name="max-frame-size",
        kind="integer",
        unit="bytes",
        default=str(DEFAULT_MAX_FRAME_SIZE),
        low=MIN_MAX_FRAME_SIZE,
        high=MAX_MAX_FRAME_SIZE,
        meaning="Largest message accepted, in bytes. Compared between primary and backup.",
    ),
    OptionSpec(
        name="max-object-size",
        kind="integer",
        unit="bytes",
        default=str(DEFAULT_MAX_OBJECT_SIZE),
        shown=f"`{DEFAULT_MAX_OBJECT_SIZE}` (at most the room `max-frame-size` leaves)",
        low=1,
        high=MAX_MAX_FRAME_SIZE,
        range_shown="1 to `max-frame-size` less 64 KiB (less half of it when that is smaller)",
        meaning="Largest encoding of an object, or of one change, in bytes, so that every "
        'committed change can be delivered. A write over it gets `bad-request` "... encodes '
        'to N bytes, over max-object-size (M bytes) ..." and nothing is committed. Compared '
        "between primary and backup.",
    ),
    OptionSpec(
        name="auth-timeout",
        kind="seconds",
        default=f"{DEFAULT_AUTH_TIMEOUT:g}",
        low=0.0,
        high=3600.0,
        above_low=True,
        meaning="Seconds a connection has to register (client port) or authenticate "
        "(management port) before it is closed.",
    ),
    OptionSpec(
        name="max-connections",
        kind="integer",
        default=str(DEFAULT_MAX_CONNECTIONS),
        low=1,
        high=1_000_000,
        meaning="Most client connections at once; the excess gets the CLOSE `too many "
        "connections: this port serves at most N; try later`. The server raises its soft "
        "open-file limit to the hard one at start. The management port is capped at 256.",
    ),
    OptionSpec(
        name="max-unauthenticated",
        kind="integer",
        default=str(DEFAULT_MAX_UNAUTHENTICATED),
        shown=f"`{DEFAULT_MAX_UNAUTHENTICATED}` (at most `max-connections`)",
        low=1,
        high=1_000_000,
        meaning="Most client connections not registered yet. At the cap one of them is "
        "closed (CLOSE `too many connections not authenticated yet: the oldest is closed "
        "first; try again`) to make room for a new one: at once the oldest of a source "
        "address (the peer's host) holding at least two places more than the newcomer's; "
        "else the oldest of the addresses holding the most, once it has waited 1 s; never "
        "one whose password is being checked. When none may go, the new one is refused "
        "(`... (at most N); try later`). A crowd from one host then cannot keep out the "
        "clients of another, and a crowd from the client's own address turns the places "
        "over at most once a second while a client that retries still gets in. The "
        "management and control ports allow 64.",
    ),
)


def parse_bounds(own: Section) -> dict[str, Any]:
    """``auth-timeout``, ``max-connections``, ``max-unauthenticated``, ``max-object-size``."""
    frame = own.integer(BOUNDS_TABLE["max-frame-size"])
    object_limit = object_size_limit(frame)
    max_object = own.integer(
        BOUNDS_TABLE["max-object-size"], min(DEFAULT_MAX_OBJECT_SIZE, object_limit)
    )
    if max_object > object_limit:
        raise own.error(
            "max-object-size",
            f"{own.text('max-object-size')!r} leaves no room in max-frame-size ({frame}): "
            f"make it at most {object_limit}",
        )
    connections = own.integer(BOUNDS_TABLE["max-connections"])
    return {
        "auth_timeout": own.seconds(BOUNDS_TABLE["auth-timeout"]),
        "max_connections": connections,
        "max_unauthenticated": own.integer(
            BOUNDS_TABLE["max-unauthenticated"], min(DEFAULT_MAX_UNAUTHENTICATED, connections)
        ),
        "max_object_size": max_object,
    }
