"""The mutual challenge-response (:mod:`addp.auth`) with the Configuration Server's errors.

The machines and the scheme live in :mod:`addp.auth`, where the host agent
(``lca``, which uses only :mod:`addp`) finds them too. Here they raise the
same failures as subclasses of :class:`~confserv.wire.errors.AuthError`, so
that the server answers them with ``auth-failed`` and the client library's
callers catch them like every other authentication failure. Each class is
also the :mod:`addp.auth` class of the same name: code that catches either
catches it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from addp import auth as _addp
from addp.auth import (
    CLIENT_TO_SERVER,
    CONTROL_IDENTITY,
    DEFAULT_AUTH_TIMEOUT,
    LEGACY_SCHEME,
    MAX_IDENTITY,
    NONCE_BYTES,
    SCHEMES,
    SERVER_TO_CLIENT,
    Purpose,
    State,
    new_nonce,
    proof,
)

from .errors import AuthError

__all__ = [
    "CLIENT_TO_SERVER",
    "CONTROL_IDENTITY",
    "DEFAULT_AUTH_TIMEOUT",
    "LEGACY_SCHEME",
    "MAX_IDENTITY",
    "NONCE_BYTES",
    "SCHEMES",
    "SERVER_TO_CLIENT",
    "ClientHandshake",
    "HandshakeError",
    "HandshakeOrderError",
    "HandshakeTimeoutError",
    "LegacySchemeError",
    "Purpose",
    "ServerHandshake",
    "State",
    "WrongProofError",
    "new_nonce",
    "proof",
]

_T = TypeVar("_T")


class HandshakeError(AuthError, _addp.HandshakeError):
    """The peer did not authenticate: wrong proof, scheme, identity or nonce."""


class LegacySchemeError(HandshakeError, _addp.LegacySchemeError):
    """The peer speaks ``cfgha-mgmt-v1`` (no mutual authentication)."""


class HandshakeOrderError(HandshakeError, _addp.HandshakeOrderError):
    """A message or call that the handshake's state does not allow."""


class HandshakeTimeoutError(HandshakeError, _addp.HandshakeTimeoutError):
    """No authentication before the deadline."""


class WrongProofError(HandshakeError, _addp.WrongProofError):
    """The client's proof does not match this side's secret: a wrong or guessed
    secret (what :class:`~confserv.core.secret_tarpit.SecretTarpit` slows down)."""


#: Most specific first: the first class the failure is an instance of names ours.
_OURS: tuple[tuple[type[_addp.HandshakeError], type[HandshakeError]], ...] = (
    (_addp.LegacySchemeError, LegacySchemeError),
    (_addp.HandshakeOrderError, HandshakeOrderError),
    (_addp.HandshakeTimeoutError, HandshakeTimeoutError),
    (_addp.WrongProofError, WrongProofError),
    (_addp.HandshakeError, HandshakeError),
)


def _translated(call: Callable[[], _T]) -> _T:
    """``call()``, an :mod:`addp.auth` failure raised as its class here."""
    try:
        return call()
    except HandshakeError:
        raise
    except _addp.HandshakeError as exc:
        ours = next(mine for theirs, mine in _OURS if isinstance(exc, theirs))
        raise ours(str(exc)) from None


class ServerHandshake(_addp.ServerHandshake):
    """:class:`addp.auth.ServerHandshake`, failing with this module's classes."""

    def challenge(self) -> dict[str, str]:
        """See :meth:`addp.auth.ServerHandshake.challenge`."""
        return _translated(super().challenge)

    def answer(self, request: Mapping[str, Any]) -> dict[str, str]:
        """See :meth:`addp.auth.ServerHandshake.answer`."""
        return _translated(lambda: super(ServerHandshake, self).answer(request))

    def command(self, op: str) -> None:
        """See :meth:`addp.auth.ServerHandshake.command`."""
        _translated(lambda: super(ServerHandshake, self).command(op))

    def expire(self, now: float) -> None:
        """See :meth:`addp.auth.ServerHandshake.expire`."""
        _translated(lambda: super(ServerHandshake, self).expire(now))


class ClientHandshake(_addp.ClientHandshake):
    """:class:`addp.auth.ClientHandshake`, failing with this module's classes."""

    def challenge(self, msg: Mapping[str, Any]) -> dict[str, str]:
        """See :meth:`addp.auth.ClientHandshake.challenge`."""
        return _translated(lambda: super(ClientHandshake, self).challenge(msg))

    def verify(self, answer: Mapping[str, Any]) -> None:
        """See :meth:`addp.auth.ClientHandshake.verify`."""
        _translated(lambda: super(ClientHandshake, self).verify(answer))
