"""The deadline of an unauthenticated management or control connection (trio glue).

Shared by the management port (:mod:`confserv.server.management`) and the
supervisor's control port (:mod:`scs.control`): the pure
:class:`~confserv.wire.auth.ServerHandshake` says when the deadline is and
whether it passed; this carries it out.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from addp.transport import Link
from confserv.wire.auth import HandshakeTimeoutError, ServerHandshake


async def close_at_auth_deadline(
    handshake: ServerHandshake,
    link: Link,
    alarm: Callable[[str], object],
    scope: trio.CancelScope,
) -> None:
    """Sleep until the handshake's deadline; if the connection has not authenticated
    by then, ``alarm`` the reason, close the link with it and cancel ``scope`` (the
    connection's tasks)."""
    deadline = handshake.deadline
    if deadline is None:
        return
    await trio.sleep_until(deadline)
    try:
        handshake.expire(trio.current_time())
    except HandshakeTimeoutError as exc:
        alarm(str(exc))
        await link.aclose(f"authentication failed: {exc}")
        scope.cancel()
