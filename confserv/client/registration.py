"""A client's ``register`` on a server that may be failing over (issue 16).

:class:`Login` sends the resumption ticket first, when the client has one, and
its password only when the ticket is refused; :class:`PromotionPolls` says
whether a backup's refusal is worth asking again on the same connection (it
lost its primary, or names as primary the server the client just lost) and
after how long. Used by :func:`confserv.client.session.open_client`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

import trio

from confserv.wire.errors import BackupModeError, ConfServError, RequestError, TicketRefusedError

#: ``(host, port)``, as :mod:`confserv.client.session` names a server.
Address = tuple[str, int]


class _Requests(Protocol):
    """What a login needs of a session: requests, and the first message it got."""

    first: Any

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send a request; its answer (an error answer raises)."""
        ...


__all__ = ["PROMOTION_POLL", "PROMOTION_POLL_MAX", "Login", "NotAClientPortError", "PromotionPolls"]


class NotAClientPortError(ConfServError):
    """The port given as a client port is a management (or control) port."""


#: First pause before asking a backup again while its pair fails over, seconds; each
#: pause doubles, to :data:`PROMOTION_POLL_MAX` (a promotion takes ~10 ms after a kill).
PROMOTION_POLL, PROMOTION_POLL_MAX = 0.002, 0.05


class PromotionPolls:
    """Whether a backup's refusal is asked again, and after how long (see open_client)."""

    def __init__(self, until: float, suspects: Collection[Address]) -> None:
        self.until, self.suspects = until, suspects
        self.delay = PROMOTION_POLL / 2

    def again(self, exc: BackupModeError, named: Address | None) -> bool:
        """Whether to ask again; ``named`` is the primary the refusal names, parsed."""
        likely = exc.primary_lost or (named is not None and named in self.suspects)
        self.delay = min(self.delay * 2, PROMOTION_POLL_MAX)
        return likely and trio.current_time() + self.delay < self.until


class Login:
    """One ``register``: with the ticket first when there is one, then the password."""

    def __init__(
        self, app: str, app_type: str, user: str, password: str, daemon: bool, ticket: str | None
    ) -> None:
        self.fields = {"app": app, "app_type": app_type, "user": user, "daemon": daemon}
        self.password, self.ticket = password, ticket

    async def register(self, session: _Requests, timeout: float, where: Address) -> dict[str, Any]:
        """The answer of the first ``register`` the server accepts."""
        with trio.fail_after(timeout):
            try:
                if self.ticket is not None:
                    try:
                        return await session.request("register", **self.fields, ticket=self.ticket)
                    except TicketRefusedError:
                        self.ticket = None  # expired, or the Person changed: the password
                return await session.request("register", **self.fields, password=self.password)
            except RequestError as exc:
                first = session.first
                if isinstance(first, dict) and "challenge" in first:
                    raise NotAClientPortError(
                        f"{where[0]}:{where[1]} is a management or control port (it sent a "
                        "challenge): give the server's client port"
                    ) from exc
                raise
