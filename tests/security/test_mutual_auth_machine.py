"""The pure mutual-authentication handshake (confserv.wire.auth): hypothesis properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confserv.wire.auth import (
    CLIENT_TO_SERVER,
    LEGACY_SCHEME,
    NONCE_BYTES,
    SERVER_TO_CLIENT,
    ClientHandshake,
    HandshakeError,
    HandshakeOrderError,
    HandshakeTimeoutError,
    LegacySchemeError,
    Purpose,
    ServerHandshake,
    State,
    proof,
)

nonces = st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES).map(bytes.hex)
names = st.text(min_size=1, max_size=20)
secrets = st.text(min_size=1, max_size=30)
purposes = st.sampled_from(list(Purpose))


def _run(
    purpose: Purpose, server_secret: str, client_secret: str, name: str, expect: str | None
) -> tuple[ServerHandshake, ClientHandshake, dict[str, Any], dict[str, Any]]:
    """One honest exchange; returns both machines, the client's request and the server's answer."""
    server = ServerHandshake(purpose, server_secret, name, now=0.0)
    client = ClientHandshake((purpose,), client_secret, expect)
    request = client.challenge(server.challenge())
    answer = server.answer(request)
    client.verify(answer)
    return server, client, request, answer


@given(purposes, secrets, names)
def test_both_sides_authenticate_with_the_same_secret(
    purpose: Purpose, secret: str, name: str
) -> None:
    server, client, request, answer = _run(purpose, secret, secret, name, name)
    assert server.authenticated
    assert client.authenticated
    assert server.deadline is None
    assert client.identity == name
    assert request["scheme"] == answer["scheme"] == purpose.scheme
    assert set(request) == {"scheme", "server", "nonce", "proof"}  # the secret is not sent


@given(purposes, secrets, secrets, names)
def test_a_wrong_secret_fails_on_both_sides(
    purpose: Purpose, good: str, bad: str, name: str
) -> None:
    if good == bad:
        return
    # The client's secret is wrong: the server refuses, and proves nothing.
    server = ServerHandshake(purpose, good, name, now=0.0)
    client = ClientHandshake((purpose,), bad, name)
    request = client.challenge(server.challenge())
    with pytest.raises(HandshakeError, match="wrong proof"):
        server.answer(request)
    assert server.state is State.FAILED
    # The server's secret is wrong (a fake that signs with a guess): the client refuses.
    fake = ServerHandshake(purpose, bad, name, now=0.0)
    client = ClientHandshake((purpose,), good, name)
    request = client.challenge(fake.challenge())
    forged = {"proof": proof(bad, purpose, SERVER_TO_CLIENT, name, fake.nonce, request["nonce"])}
    with pytest.raises(HandshakeError, match="did not prove"):
        client.verify(forged)
    assert client.state is State.FAILED
    assert not client.authenticated


@given(purposes, secrets, names, names, nonces, nonces)
def test_an_answer_never_verifies_in_another_session_identity_purpose_or_direction(
    purpose: Purpose, secret: str, x: str, y: str, ns: str, ns2: str
) -> None:
    server_x = ServerHandshake(purpose, secret, x, now=0.0, nonce=ns)
    client = ClientHandshake((purpose,), secret, x)
    request = client.challenge(server_x.challenge())
    answer = server_x.answer(request)
    client.verify(answer)

    def fresh(p: Purpose, name: str, nonce: str) -> ServerHandshake:
        machine = ServerHandshake(p, secret, name, now=0.0, nonce=nonce)
        machine.challenge()
        return machine

    # Replayed to X in a second session (X's nonce is new).
    if ns2 != ns:
        with pytest.raises(HandshakeError):
            fresh(purpose, x, ns2).answer(request)
    # Relayed to Y (same secret), even if Y's nonce were the same, with or without
    # the claimed name rewritten.
    if x != y:
        with pytest.raises(HandshakeError):
            fresh(purpose, y, ns).answer(request)
        with pytest.raises(HandshakeError):
            fresh(purpose, y, ns).answer({**request, "server": y})
    # Presented on a port of another purpose (same secret, name and nonce).
    for other in Purpose:
        if other is not purpose:
            with pytest.raises(HandshakeError):
                fresh(other, x, ns).answer({**request, "scheme": other.scheme})
    # Reflected: X's proof offered back to X as a client's proof.
    with pytest.raises(HandshakeError, match="wrong proof"):
        fresh(purpose, x, ns).answer({**request, "proof": answer["proof"]})
    # X's answer does not convince a second client (another client nonce).
    second = ClientHandshake((purpose,), secret, x)
    second.challenge({"challenge": ns, "server": x, "scheme": purpose.scheme})
    with pytest.raises(HandshakeError, match="did not prove"):
        second.verify(answer)
    # Nor does the client's own proof, reflected back to it as the server's.
    third = ClientHandshake((purpose,), secret, x)
    own = third.challenge({"challenge": ns, "server": x, "scheme": purpose.scheme})
    with pytest.raises(HandshakeError, match="did not prove"):
        third.verify({"proof": own["proof"]})


@given(purposes, secrets, names, names, nonces, nonces, nonces, nonces)
def test_proofs_differ_whenever_any_bound_field_differs(
    purpose: Purpose, secret: str, x: str, y: str, ns1: str, nc1: str, ns2: str, nc2: str
) -> None:
    base = proof(secret, purpose, CLIENT_TO_SERVER, x, ns1, nc1)
    assert base != proof(secret, purpose, SERVER_TO_CLIENT, x, ns1, nc1)
    if (x, ns1, nc1) != (y, ns2, nc2):
        assert base != proof(secret, purpose, CLIENT_TO_SERVER, y, ns2, nc2)
    for other in Purpose:
        if other is not purpose:
            assert base != proof(secret, other, CLIENT_TO_SERVER, x, ns1, nc1)


@given(purposes, secrets, names, names)
def test_a_server_of_another_name_is_refused_before_the_client_answers(
    purpose: Purpose, secret: str, x: str, y: str
) -> None:
    if x == y:
        return
    server = ServerHandshake(purpose, secret, y, now=0.0)
    client = ClientHandshake((purpose,), secret, x)
    with pytest.raises(HandshakeError, match="not"):
        client.challenge(server.challenge())
    assert client.state is State.FAILED


SERVER_STEPS = ("challenge", "answer", "command", "expire")
#: The legal moves of the server machine: (state, step) -> next state; any
#: other move raises HandshakeOrderError and fails the machine.
SERVER_MOVES = {
    (State.START, "challenge"): State.WAITING,
    (State.WAITING, "answer"): State.AUTHENTICATED,
    (State.AUTHENTICATED, "command"): State.AUTHENTICATED,
    (State.AUTHENTICATED, "expire"): State.AUTHENTICATED,
    (State.FAILED, "expire"): State.FAILED,
}


@settings(max_examples=300)
@given(st.lists(st.sampled_from(SERVER_STEPS), max_size=6), secrets, names)
def test_the_server_machine_refuses_out_of_order_messages_with_one_error(
    steps: list[str], secret: str, name: str
) -> None:
    server = ServerHandshake(Purpose.MANAGEMENT, secret, name, now=0.0, timeout=5.0)
    client = ClientHandshake((Purpose.MANAGEMENT,), secret, name)
    request = client.challenge(
        {"challenge": server.nonce, "server": name, "scheme": "cfgha-mgmt-v2"}
    )
    for step in steps:
        before = server.state
        call = {
            "challenge": server.challenge,
            "answer": lambda: server.answer(request),
            "command": lambda: server.command("status"),
            "expire": lambda: server.expire(10.0),
        }[step]
        if (before, step) in SERVER_MOVES:
            call()
            assert server.state is SERVER_MOVES[before, step]
        elif step == "expire":  # START or WAITING, past the deadline
            with pytest.raises(HandshakeTimeoutError):
                call()
        else:
            with pytest.raises(HandshakeOrderError):
                call()
        if server.state is not SERVER_MOVES.get((before, step)):
            assert server.state is State.FAILED
            assert server.deadline is None


CLIENT_MOVES = {
    (State.START, "challenge"): State.WAITING,
    (State.WAITING, "verify"): State.AUTHENTICATED,
}


@given(st.lists(st.sampled_from(("challenge", "verify")), max_size=5), secrets, names)
def test_the_client_machine_refuses_out_of_order_messages_with_one_error(
    steps: list[str], secret: str, name: str
) -> None:
    server = ServerHandshake(Purpose.CONTROL, secret, name, now=0.0)
    client = ClientHandshake((Purpose.CONTROL,), secret, name)
    challenge = server.challenge()
    answer = server.answer(
        ClientHandshake((Purpose.CONTROL,), secret, name, nonce=client.nonce).challenge(challenge)
    )
    for step in steps:
        before = client.state
        call = {
            "challenge": lambda: client.challenge(challenge),
            "verify": lambda: client.verify(answer),
        }[step]
        if (before, step) in CLIENT_MOVES:
            call()
            assert client.state is CLIENT_MOVES[before, step]
        else:
            with pytest.raises(HandshakeOrderError):
                call()
            assert client.state is State.FAILED


def test_the_deadline_closes_only_an_unauthenticated_session() -> None:
    server = ServerHandshake(Purpose.MANAGEMENT, "s", "x", now=100.0, timeout=5.0)
    server.challenge()
    assert server.deadline == 105.0
    server.expire(104.9)  # not yet
    with pytest.raises(HandshakeTimeoutError, match="no authentication within 5 s"):
        server.expire(105.0)
    assert server.deadline is None
    with pytest.raises(HandshakeOrderError):
        server.answer({})


def test_v1_peers_get_one_clear_refusal() -> None:
    server = ServerHandshake(Purpose.MANAGEMENT, "s", "x", now=0.0)
    server.challenge()
    with pytest.raises(LegacySchemeError, match=f"{LEGACY_SCHEME}.*upgrade the client"):
        server.answer({"op": "auth", "id": 1, "response": "00" * 32})
    client = ClientHandshake((Purpose.MANAGEMENT,), "s", "x")
    with pytest.raises(LegacySchemeError, match="upgrade the server"):
        client.challenge({"challenge": "00" * NONCE_BYTES, "server": "x"})


def test_no_secret_configured_refuses_every_client() -> None:
    server = ServerHandshake(Purpose.MANAGEMENT, None, "x", now=0.0)
    request = ClientHandshake((Purpose.MANAGEMENT,), "s", "x").challenge(server.challenge())
    with pytest.raises(HandshakeError, match="no management-secret is configured"):
        server.answer(request)


@given(
    st.dictionaries(
        st.sampled_from(["scheme", "nonce", "server", "proof", "response"]),
        st.one_of(st.text(max_size=70), st.integers(), st.none()),
    )
)
def test_any_malformed_auth_is_one_handshake_error(request: dict[str, Any]) -> None:
    server = ServerHandshake(Purpose.MANAGEMENT, "s", "x", now=0.0)
    server.challenge()
    with pytest.raises(HandshakeError) as caught:
        server.answer(request)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_the_documented_example_proofs() -> None:
    """docs/protocol.md 10.7 gives these values: an implementation in another
    language checks itself against them."""
    ns, nc = "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"
    mgmt = Purpose.MANAGEMENT
    assert proof("mgmt-secret", mgmt, CLIENT_TO_SERVER, "confserv", ns, nc) == (
        "87a3fd7897a16ba5ac8b4eb0c85f8ed71bf4fea90f450850ccf27ce96c12ec24"
    )
    assert proof("mgmt-secret", mgmt, SERVER_TO_CLIENT, "confserv", ns, nc) == (
        "20db1fb81e6d872d56d3db41e468c77390f0dfac125f0f1487ffbb0a3b685aa5"
    )
    assert proof("ctl-secret", Purpose.CONTROL, CLIENT_TO_SERVER, "scs", ns, nc) == (
        "3da3ff6ec4ef040cadd7a1087c2af92e651d6434d0bd4fcd1a8dc55ab1911f4c"
    )
