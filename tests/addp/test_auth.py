"""The handshake in :mod:`addp.auth` (for the host agent, which uses only addp) and its
Configuration Server face in :mod:`confserv.wire.auth` fail the same way, each with its
own classes: the agent gets addp's, the server an ``auth-failed`` AuthError that is
addp's class too."""

from __future__ import annotations

import pytest

from addp import auth
from confserv.wire import auth as cs_auth
from confserv.wire.errors import AuthError

SECRET = "agent-secret-of-host-a"


def _answer(server: auth.ServerHandshake, secret: str) -> dict[str, str]:
    client = auth.ClientHandshake((auth.Purpose.AGENT,), secret, "host-a")
    return {"op": "auth", **client.challenge(server.challenge())}


def test_addp_raises_its_own_classes_for_a_wrong_secret() -> None:
    server = auth.ServerHandshake(auth.Purpose.AGENT, SECRET, "host-a", now=0.0)
    with pytest.raises(auth.WrongProofError, match="wrong proof: the client's agent-secret") as e:
        server.answer(_answer(server, "guess"))
    assert not isinstance(e.value, AuthError)
    assert e.value.code == "auth-failed"


def test_the_right_secret_authenticates_both_ways() -> None:
    server = auth.ServerHandshake(auth.Purpose.AGENT, SECRET, "host-a", now=0.0)
    client = auth.ClientHandshake((auth.Purpose.AGENT,), SECRET, "host-a")
    extra = server.answer({"op": "auth", **client.challenge(server.challenge())})
    client.verify(extra)
    assert server.authenticated
    assert client.authenticated


@pytest.mark.parametrize(
    ("call", "ours", "theirs"),
    [
        ("wrong", cs_auth.WrongProofError, auth.WrongProofError),
        ("order", cs_auth.HandshakeOrderError, auth.HandshakeOrderError),
        ("expire", cs_auth.HandshakeTimeoutError, auth.HandshakeTimeoutError),
        ("legacy", cs_auth.LegacySchemeError, auth.LegacySchemeError),
    ],
)
def test_the_server_face_raises_auth_errors_that_are_addp_classes_too(
    call: str, ours: type[Exception], theirs: type[Exception]
) -> None:
    server = cs_auth.ServerHandshake(cs_auth.Purpose.MANAGEMENT, SECRET, "cs", now=0.0)
    if call != "order":
        challenge = server.challenge()
    if call == "order":
        fail = lambda: server.command("status")  # noqa: E731
    elif call == "expire":
        fail = lambda: server.expire(10.0)  # noqa: E731
    elif call == "legacy":
        fail = lambda: server.answer({"op": "auth", "response": "x"})  # noqa: E731
    else:
        client = cs_auth.ClientHandshake((cs_auth.Purpose.MANAGEMENT,), "guess", "cs")
        request = {"op": "auth", **client.challenge(challenge)}
        fail = lambda: server.answer(request)  # noqa: E731
    with pytest.raises(ours) as e:
        fail()
    assert isinstance(e.value, AuthError)
    assert isinstance(e.value, theirs)
