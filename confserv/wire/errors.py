"""Exceptions of the Configuration Server, each with the wire code clients see.

:class:`RequestError` and its subclasses are answers to one request: the
server sends ``{"code": err.code, "message": str(err)}`` to that client and
goes on. The others are failures of the server's own parts.
"""

from __future__ import annotations

from typing import Any


class ConfServError(Exception):
    """Root of every exception this package raises on purpose."""


class RequestError(ConfServError):
    """A request that cannot be carried out; ``code`` is sent to the client.

    On the client side, an answer whose code no class here has keeps its
    ``code`` and the whole answer as ``details`` (a peer such as the host
    agent has codes of its own).
    """

    code = "error"
    details: dict[str, Any] | None = None


class BadRequestError(RequestError):
    """The request is not a map, lacks ``op``/``id``, or has an argument of the wrong shape."""

    code = "bad-request"


class UnknownTypeError(RequestError):
    """The request names an object type the server does not know."""

    code = "unknown-type"


class UnknownFieldError(RequestError):
    """An object or filter names a field its type does not have."""

    code = "unknown-field"


class FieldValueError(RequestError):
    """A field has a value of the wrong type or outside what it accepts."""

    code = "bad-value"


class NotFoundError(RequestError):
    """The object named by type and dbid does not exist."""

    code = "not-found"


class ConstraintError(RequestError):
    """The write would break a constraint: a duplicate name, a dangling or held reference."""

    code = "constraint"


class AuthError(RequestError):
    """Wrong user name or password, or a management response that does not match."""

    code = "auth-failed"


class TicketRefusedError(AuthError):
    """A resumption ticket that cannot be used (expired, forged, another pair's, the
    Person changed): the client logs in with its password instead."""

    code = "ticket-refused"


class PermissionDeniedError(RequestError):
    """The logged-in Person lacks the right the request needs (the message names the
    Person, the right and the object or type), or was disabled or deleted."""

    code = "permission-denied"


class NotRegisteredError(RequestError):
    """A request other than ``register`` came before registration."""

    code = "not-registered"


class DuplicateApplicationError(RequestError):
    """A daemon application of that name is already connected."""

    code = "duplicate-app"


class BackupModeError(RequestError):
    """This server is a backup: it serves no clients until it is switched to primary."""

    code = "backup-mode"

    def __init__(
        self, message: str, primary: str | None = None, primary_lost: bool = False
    ) -> None:
        super().__init__(message)
        self.primary = primary
        #: The backup has lost its own link to that primary: the hint may name a dead
        #: server, and a promotion may be under way (a client asks this backup again).
        self.primary_lost = primary_lost


class HistoryExpiredError(RequestError):
    """The history no longer reaches back to the requested serial: reload everything."""

    code = "history-expired"


class FencedError(RequestError):
    """The write's epoch is not the lease's: this server is no longer primary."""

    code = "fenced"


class ReadOnlyError(RequestError):
    """The server cannot accept writes right now (role change, lease not renewed)."""

    code = "read-only"


class PromotionRefusedError(RequestError):
    """``switch-to-primary`` refused: another server holds a valid lease (use force
    only with proof that it is dead)."""

    code = "lease-held"


class PairStoppedError(RequestError):
    """A role command reached a pair driver that is not running (the server is stopping)."""

    code = "stopping"


class NoPrimaryError(RequestError):
    """A proxy has no primary to relay a write to right now; nothing was written."""

    code = "no-primary"


class OutcomeUnknownError(RequestError):
    """The link to the primary broke before it answered a relayed write: it may or
    may not have been committed; read back before retrying."""

    code = "outcome-unknown"


class UnavailableError(RequestError):
    """The Configuration Database did not answer; nothing was committed."""

    code = "db-unavailable"


class DatabaseMismatchError(RequestError):
    """The Configuration Database is not what this server has served (an older dump
    restored, the file replaced or deleted): nothing is served until an operator
    reloads it (``cfgctl reload``)."""

    code = "database-mismatch"


class StaleSupervisorError(RequestError):
    """A supervisor's command carrying an older supervisor epoch than the newest this
    server has seen: a newer supervisor is active, and nothing was done."""

    code = "stale-supervisor"

    def __init__(self, message: str, epoch: int = -1, newest: int = -1) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.newest = newest


class StoreError(ConfServError):
    """The database failed in a way that is not the request's fault."""


class DatabaseIdentityError(ConfServError):
    """The database is missing, empty, foreign, or of another schema version:
    not a Configuration Database this server may use (``cfgctl init`` makes one)."""


class StaleMemoryError(RequestError):
    """A commit refused because the database's last serial is not the one memory is
    at: memory is behind (or ahead of) the database; the server catches up and tries
    once more, and a second refusal is the answer (nothing committed: retry)."""

    code = "stale-memory"

    def __init__(self, message: str, database_serial: int = -1) -> None:
        super().__init__(message)
        self.database_serial = database_serial


class LeaseHeldError(ConfServError):
    """The lease is held, unexpired, by another server (or another process)."""

    def __init__(self, message: str, holder: str, epoch: int, instance: str = "") -> None:
        super().__init__(message)
        self.holder = holder
        self.epoch = epoch
        self.instance = instance


class InstanceClaimedError(ConfServError):
    """Another process of the same Application runs (its claim is valid): this one
    must not start. ``str()`` names that process."""


class ClaimLostError(ConfServError):
    """This process's claim on its Application was taken by another process."""


class MembershipError(ConfServError):
    """The server's Application is not a member of the pair the database defines."""


#: Every request error class by its wire code, for the client side.
ERRORS_BY_CODE: dict[str, type[RequestError]] = {
    cls.code: cls
    for cls in (
        RequestError,
        BadRequestError,
        UnknownTypeError,
        UnknownFieldError,
        FieldValueError,
        NotFoundError,
        ConstraintError,
        AuthError,
        TicketRefusedError,
        PermissionDeniedError,
        NotRegisteredError,
        DuplicateApplicationError,
        PairStoppedError,
        BackupModeError,
        HistoryExpiredError,
        FencedError,
        ReadOnlyError,
        PromotionRefusedError,
        NoPrimaryError,
        OutcomeUnknownError,
        UnavailableError,
        DatabaseMismatchError,
        StaleMemoryError,
        StaleSupervisorError,
    )
}


class ChangeGapError(Exception):
    """A change arrived whose serial is not the next one: the gap must be filled first."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"change serial {got} arrived, expected {expected}")
        self.expected = expected
        self.got = got


class StaleEpochError(Exception):
    """A change from an older epoch than one already applied: refused (design invariant 3)."""


class ApplyError(Exception):
    """A change could not be applied to memory (it names an object memory does not
    have): memory is not the database's, and must be reloaded."""


class ConnectionLostError(ConfServError):
    """The connection ended while a request was in flight.

    For a write the outcome is unknown: it may or may not have been
    committed. The client library never reports such a write as done; the
    caller re-reads after reconnecting (the write carries its serial once
    committed, visible in the History Log).
    """


class NotSentError(ConnectionLostError):
    """The connection was already gone when the request was to be sent: it was not
    sent, so it certainly did nothing and may be sent again elsewhere."""


class NoServerError(ConfServError):
    """None of the given servers could be reached or would serve (all down or backup)."""


def first_in_group(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first ``kind`` inside ``exc``, looking through exception groups (trio's
    nurseries and trio-asyncio wrap errors in groups); None when there is none."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := first_in_group(inner, kind)) is not None:
                return found
    return None
