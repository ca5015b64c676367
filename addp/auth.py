"""Mutual challenge-response of the links that need one (scheme v2), sans-IO.

Here in :mod:`addp` because every end of an authenticated link uses it: the
Configuration Server's management port, the supervisor's control port, and the
host agents (``lca``), which use nothing but :mod:`addp`.
:mod:`confserv.wire.auth` gives the same machines with the Configuration
Server's error classes (each also an :class:`AuthFailure` of this module).

Both sides prove that they know the shared secret, and each proof binds the
scheme (purpose and version), the direction, the responder's identity and
both nonces, so a proof from one session never verifies in another session,
for another server, for another purpose or in the other direction::

    server -> client  {"challenge": Ns, "server": identity, "scheme": "cfgha-mgmt-v2"}
    client -> server  {"op": "auth", "id": n, "scheme": ..., "server": expected identity,
                       "nonce": Nc, "proof": MAC("client->server")}
    server -> client  {"re": n, "ok": true, "scheme": ..., "proof": MAC("server->client"), ...}

    MAC(direction) = hex(HMAC-SHA256(secret, field(scheme) + field(direction)
                         + field(identity) + field(Ns) + field(Nc)))
    field(x) = 4-byte big-endian length of UTF-8 x, then UTF-8 x

The server proves only after the client did, so an unauthenticated client
learns nothing derived from the secret; the client checks the announced
identity (``expect``) before it answers, and the server's proof before it
sends any command. :class:`ServerHandshake` and :class:`ClientHandshake` are
pure: the trio glue feeds them messages and the time.

Purposes have separate secrets and separate scheme labels
(:class:`Purpose`): the management ports (``management-secret``), the
supervisor's control port (``[scs] control-secret``), and, reserved for the
host agents (``lca``), ``agent-secret``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

#: The scheme of the first version (server-nonce only): refused with one line.
LEGACY_SCHEME = "cfgha-mgmt-v1"
#: Random bytes in a nonce; sent as twice as many lowercase hex digits.
NONCE_BYTES = 16
#: Longest identity accepted from a peer (a section name).
MAX_IDENTITY = 255
#: Direction labels: which side's proof a MAC is.
CLIENT_TO_SERVER = "client->server"
SERVER_TO_CLIENT = "server->client"
#: The identity of the supervisor's control port.
CONTROL_IDENTITY = "scs"
#: Seconds an unauthenticated connection may take to authenticate, by default.
DEFAULT_AUTH_TIMEOUT = 5.0
_HEX = frozenset("0123456789abcdef")


class Purpose(enum.Enum):
    """What a secret is for; each purpose has its own secret and scheme label."""

    MANAGEMENT = "mgmt"
    CONTROL = "ctl"
    AGENT = "agent"  # the host agents (lca)

    @property
    def scheme(self) -> str:
        """The versioned scheme label, e.g. ``cfgha-mgmt-v2``."""
        return f"cfgha-{self.value}-v2"

    @property
    def secret_option(self) -> str:
        """The option that holds this purpose's secret."""
        return _SECRET_OPTIONS[self]


_SECRET_OPTIONS = {
    Purpose.MANAGEMENT: "management-secret",
    Purpose.CONTROL: "control-secret",
    Purpose.AGENT: "agent-secret",
}
#: Every v2 scheme label and its purpose.
SCHEMES: dict[str, Purpose] = {p.scheme: p for p in Purpose}


class AuthFailure(Exception):
    """An authentication failed; ``code`` is what an answer about it carries."""

    code = "auth-failed"


class HandshakeError(AuthFailure):
    """The peer did not authenticate: wrong proof, scheme, identity or nonce."""


class LegacySchemeError(HandshakeError):
    """The peer speaks ``cfgha-mgmt-v1`` (no mutual authentication)."""


class HandshakeOrderError(HandshakeError):
    """A message or call that the handshake's state does not allow."""


class HandshakeTimeoutError(HandshakeError):
    """No authentication before the deadline."""


class WrongProofError(HandshakeError):
    """The client's proof does not match this side's secret: a wrong or guessed
    secret (what :class:`~confserv.core.secret_tarpit.SecretTarpit` slows down)."""


class State(enum.Enum):
    """Where a handshake is."""

    START = "start"
    WAITING = "waiting"  # server: challenge sent; client: answer sent
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


def new_nonce() -> str:
    """A fresh nonce: :data:`NONCE_BYTES` random bytes in lowercase hex."""
    return os.urandom(NONCE_BYTES).hex()


def proof(
    secret: str,
    purpose: Purpose,
    direction: str,
    identity: str,
    server_nonce: str,
    client_nonce: str,
) -> str:
    """The MAC one side sends (see the module docstring)."""
    message = b"".join(
        len(b).to_bytes(4, "big") + b
        for b in (
            x.encode() for x in (purpose.scheme, direction, identity, server_nonce, client_nonce)
        )
    )
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _shown(value: Any) -> str:
    """A peer's value for an error line: repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nonce(msg: Mapping[str, Any], key: str) -> str:
    value = msg.get(key)
    if not (isinstance(value, str) and len(value) == 2 * NONCE_BYTES and set(value) <= _HEX):
        raise HandshakeError(f"{key!r} is not {2 * NONCE_BYTES} lowercase hex digits")
    return value


def _identity(msg: Mapping[str, Any], key: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTITY:
        raise HandshakeError(f"{key!r} is not a name of 1 to {MAX_IDENTITY} characters")
    return value


def _check_scheme(msg: Mapping[str, Any], accepted: tuple[Purpose, ...], who: str) -> Purpose:
    scheme = msg.get("scheme")
    if scheme is None:
        raise LegacySchemeError(
            f"{who} speaks {LEGACY_SCHEME} (no mutual authentication); "
            f"this side needs {accepted[0].scheme}: upgrade {who}"
        )
    purpose = SCHEMES.get(scheme) if isinstance(scheme, str) else None
    if purpose not in accepted:
        want = " or ".join(p.scheme for p in accepted)
        raise HandshakeError(f"{who} speaks {_shown(scheme)}, not {want} (wrong port?)")
    assert purpose is not None
    return purpose


class ServerHandshake:
    """The server's side: challenge, check the client's proof, prove in return.

    ``secret`` None: nobody can authenticate (the option is not set).
    ``now`` and ``timeout`` give :attr:`deadline`, by which the client must
    have authenticated.
    """

    def __init__(
        self,
        purpose: Purpose,
        secret: str | None,
        identity: str,
        *,
        now: float,
        timeout: float = DEFAULT_AUTH_TIMEOUT,
        nonce: str | None = None,
    ) -> None:
        self.purpose, self.secret, self.identity = purpose, secret, identity
        self.nonce = nonce or new_nonce()
        self.timeout = timeout
        self._deadline = now + timeout
        self.state = State.START

    @property
    def authenticated(self) -> bool:
        """Whether the client proved it knows the secret."""
        return self.state is State.AUTHENTICATED

    @property
    def deadline(self) -> float | None:
        """When an unauthenticated connection is to be closed; None once decided."""
        return self._deadline if self.state in (State.START, State.WAITING) else None

    def _fail(self, exc: HandshakeError) -> HandshakeError:
        self.state = State.FAILED
        return exc

    def _expect(self, state: State, what: str) -> None:
        if self.state is not state:
            raise self._fail(
                HandshakeOrderError(f"{what} out of order (handshake {self.state.value})")
            )

    def challenge(self) -> dict[str, str]:
        """The first message to send."""
        self._expect(State.START, "challenge")
        self.state = State.WAITING
        return {"challenge": self.nonce, "server": self.identity, "scheme": self.purpose.scheme}

    def answer(self, request: Mapping[str, Any]) -> dict[str, str]:
        """Check an ``auth`` request; the fields to add to the success answer.

        Raises:
            HandshakeError: the request does not authenticate (state FAILED).
        """
        self._expect(State.WAITING, "auth")
        try:
            if "scheme" not in request and "response" in request:
                raise LegacySchemeError(
                    f"the client answered with {LEGACY_SCHEME}; this server speaks "
                    f"{self.purpose.scheme} (mutual authentication): upgrade the client"
                )
            _check_scheme(request, (self.purpose,), "the client")
            client_nonce = _nonce(request, "nonce")
            if client_nonce == self.nonce:
                raise HandshakeError("the client's nonce is the server's own")
            meant = _identity(request, "server")
            if meant != self.identity:
                raise HandshakeError(
                    f"the client meant to reach {_shown(meant)}; this is {self.identity!r}"
                )
            if self.secret is None:
                raise HandshakeError(
                    f"no {self.purpose.secret_option} is configured for this server"
                )
            given = request.get("proof")
            want = self._mac(CLIENT_TO_SERVER, client_nonce)
            if not (isinstance(given, str) and hmac.compare_digest(given.encode(), want.encode())):
                raise WrongProofError(
                    f"wrong proof: the client's {self.purpose.secret_option} is not this server's"
                )
        except HandshakeError as exc:
            raise self._fail(type(exc)(f"authentication failed: {exc}")) from None
        self.state = State.AUTHENTICATED
        return {"scheme": self.purpose.scheme, "proof": self._mac(SERVER_TO_CLIENT, client_nonce)}

    def command(self, op: str) -> None:
        """A command other than ``auth`` arrived: allowed only once authenticated.

        Raises:
            HandshakeOrderError: not authenticated (state FAILED).
        """
        if not self.authenticated:
            self.state = State.FAILED
            raise HandshakeOrderError(f"authenticate before {_shown(op)}")

    def expire(self, now: float) -> None:
        """The deadline passed without authentication (state FAILED).

        Raises:
            HandshakeTimeoutError: when ``now`` is at or past :attr:`deadline`.
        """
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self.state = State.FAILED
            raise HandshakeTimeoutError(f"no authentication within {self.timeout:g} s")

    def _mac(self, direction: str, client_nonce: str) -> str:
        assert self.secret is not None
        return proof(self.secret, self.purpose, direction, self.identity, self.nonce, client_nonce)


class ClientHandshake:
    """The client's side: answer a challenge, then check the server's proof.

    ``purposes``: the schemes this client may speak (normally one).
    ``expect``: the identity the client means to reach; None accepts the one
    the server announces (then a relay between servers that share the
    secret is not detected: callers that know the name pass it).
    """

    def __init__(
        self,
        purposes: tuple[Purpose, ...],
        secret: str,
        expect: str | None = None,
        *,
        nonce: str | None = None,
    ) -> None:
        if not purposes:
            raise ValueError("at least one purpose")
        self.purposes, self.secret, self.expect = purposes, secret, expect
        self.nonce = nonce or new_nonce()
        self.state = State.START
        self.purpose: Purpose | None = None
        self.identity: str | None = None
        self._server_nonce = ""

    @property
    def authenticated(self) -> bool:
        """Whether the server proved it knows the secret."""
        return self.state is State.AUTHENTICATED

    def _fail(self, exc: HandshakeError) -> HandshakeError:
        self.state = State.FAILED
        return exc

    def challenge(self, msg: Mapping[str, Any]) -> dict[str, str]:
        """The server's first message; the ``auth`` request's arguments.

        Raises:
            HandshakeError: not a challenge this client answers (nothing is sent).
        """
        if self.state is not State.START:
            raise self._fail(
                HandshakeOrderError(f"challenge out of order (handshake {self.state.value})")
            )
        try:
            if "challenge" not in msg:
                raise HandshakeError("the first message is not a challenge")
            self.purpose = _check_scheme(msg, self.purposes, "the server")
            server_nonce = _nonce(msg, "challenge")
            identity = _identity(msg, "server")
            if self.expect is not None and identity != self.expect:
                raise HandshakeError(f"the server is {_shown(identity)}, not {self.expect!r}")
        except HandshakeError as exc:
            raise self._fail(exc) from None
        self.identity, self._server_nonce = identity, server_nonce
        self.state = State.WAITING
        return {
            "scheme": self.purpose.scheme,
            "server": identity,
            "nonce": self.nonce,
            "proof": self._mac(CLIENT_TO_SERVER),
        }

    def verify(self, answer: Mapping[str, Any]) -> None:
        """The server's success answer: it must carry the server's proof.

        Raises:
            HandshakeError: the server did not prove it knows the secret.
        """
        if self.state is not State.WAITING:
            raise self._fail(
                HandshakeOrderError(f"answer out of order (handshake {self.state.value})")
            )
        assert self.purpose is not None
        given = answer.get("proof")
        want = self._mac(SERVER_TO_CLIENT)
        if not (isinstance(given, str) and hmac.compare_digest(given.encode(), want.encode())):
            raise self._fail(
                HandshakeError(
                    f"the server did not prove it knows the {self.purpose.secret_option} "
                    "(not the server meant, or the secrets differ)"
                )
            )
        self.state = State.AUTHENTICATED

    def _mac(self, direction: str) -> str:
        assert self.purpose is not None
        assert self.identity is not None
        return proof(
            self.secret, self.purpose, direction, self.identity, self._server_nonce, self.nonce
        )
