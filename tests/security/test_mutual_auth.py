"""Mutual authentication on the management and control ports, end to end over links.

Real :class:`~confserv.server.management.ManagementSession` and
:class:`~scs.control.ControlSession` objects over a dummy runtime: on
127.0.0.1 for the fake-server and relay cases, over in-memory streams under
trio's MockClock for the deadlines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.testing

from addp import AddpOptions, FrameKind, LinkEnded, encode_frame, encode_payload
from addp.transport import Link, connect, open_link, serve
from confserv.client.session import open_control, open_management
from confserv.config.tls import TlsSettings
from confserv.core.runtime import Runtime
from confserv.logs.eventlog import EventLog
from confserv.server.management import ManagementSession
from confserv.wire.auth import CONTROL_IDENTITY, HandshakeError, Purpose
from confserv.wire.errors import AuthError
from scs.control import ControlSession
from tests.confserv.test_server import close_reason

SECRET = "management-secret-of-the-pair"
CONTROL_SECRET = "the-supervisors-control-secret"


class Capture(EventLog):
    """An event log that keeps the id of every event."""

    def __init__(self) -> None:
        super().__init__("test", sys.stderr, verbose="all")
        self.ids: list[int] = []

    def emit(self, event: Any, **fields: Any) -> str:
        self.ids.append(event.id)
        return super().emit(event, **fields)


class _Service:
    """What Runtime.status reads of a service."""

    epoch, last_serial, writable, subscriber_count = 1, 7, True, 0
    passwords = SimpleNamespace(hashes=0)  # (its password checks: none)

    def __len__(self) -> int:
        return 0


def runtime(name: str, log: EventLog | None = None) -> Runtime:
    """A runtime called ``name`` (its Application), primary, with no database."""
    return Runtime(
        name=name, pair="p", service=cast("Any", _Service()), log=log or Capture(), role="primary"
    )


async def serve_on(nursery: trio.Nursery, handler: Callable[[Link], Any]) -> int:
    """Serve ``handler`` on 127.0.0.1 (a free port); the port."""
    listeners = await nursery.start(partial(serve, handler, 0, AddpOptions()))
    return int(listeners[0].socket.getsockname()[1])


async def serve_management(nursery: trio.Nursery, rt: Runtime, secret: str = SECRET) -> int:
    """A management port of the server ``rt``."""

    async def handler(link: Link) -> None:
        await ManagementSession(link, rt, secret).run()

    return await serve_on(nursery, handler)


async def raw_auth(port: int, request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` (an ``auth``'s fields) as the first request; the server's answer."""
    async with connect("127.0.0.1", port, AddpOptions()) as link:
        await link.receive()  # the challenge
        await link.send({"op": "auth", "id": 1, **request})
        answer: dict[str, Any] = await link.receive()
        return answer


async def test_a_fake_server_that_does_not_know_the_secret_is_refused(
    nursery: trio.Nursery,
) -> None:
    """A process on a stopped server's port (here 'X', the supervisor's expectation)
    answers with the live primary's challenge, re-labelled, and says yes to anything."""
    primary = runtime("Y")
    primary_port = await serve_management(nursery, primary)
    captured: list[dict[str, Any]] = []

    async def fake(link: Link) -> None:
        async with connect("127.0.0.1", primary_port, AddpOptions()) as upstream:
            challenge = await upstream.receive()
            await link.send({**challenge, "server": "X"})
            request = await link.receive()
            captured.append(request)
            # Relay the supervisor's answer to the primary, as the attack did.
            await upstream.send(request)
            relayed = await upstream.receive()
            captured.append(relayed)
            await link.send({"re": request["id"], "ok": True, "role": "primary", "proof": "0" * 64})
            with contextlib.suppress(LinkEnded):
                captured.append(await link.receive())  # a command: must never come

    fake_port = await serve_on(nursery, fake)
    with pytest.raises(HandshakeError, match="did not prove it knows the management-secret"):
        async with open_management("127.0.0.1", fake_port, SECRET, expect="X") as m:
            await m.switch_to_backup()  # must never be sent
    assert len(captured) == 2  # the answer and the primary's verdict; no command
    _, relayed = captured
    # The answer the fake was handed was refused by the primary it was relayed to.
    assert relayed["ok"] is False
    assert relayed["code"] == "auth-failed"
    assert "the client meant to reach 'X'; this is 'Y'" in relayed["message"]
    # Nothing else was accepted by the primary.
    assert 20120 not in cast("Capture", primary.log).ids


async def test_a_fake_server_without_the_challenge_scheme_gets_no_answer(
    nursery: trio.Nursery,
) -> None:
    """A plain listener with a v1-style challenge: the client sends nothing at all."""
    received: list[Any] = []

    async def fake(link: Link) -> None:
        await link.send({"challenge": "00" * 16, "server": "X"})
        try:
            async for msg in link:
                received.append(msg)
        except LinkEnded:
            return

    port = await serve_on(nursery, fake)
    with pytest.raises(HandshakeError, match="speaks cfgha-mgmt-v1"):
        async with open_management("127.0.0.1", port, SECRET, expect="X"):
            pass
    await trio.sleep(0.05)
    assert received == []


async def test_a_server_of_another_name_is_refused_before_any_answer(
    nursery: trio.Nursery,
) -> None:
    port = await serve_management(nursery, runtime("Y"))
    with pytest.raises(HandshakeError, match="the server is 'Y', not 'X'"):
        async with open_management("127.0.0.1", port, SECRET, expect="X"):
            pass
    async with open_management("127.0.0.1", port, SECRET, expect="Y") as m:
        assert m.server == "Y"
        assert (await m.status())["name"] == "Y"


async def test_an_answer_does_not_relay_to_another_server_nor_replay(
    nursery: trio.Nursery,
) -> None:
    """X and Y share the secret. A man in the middle passes challenges through and
    keeps the client's answers: none of them authenticates anywhere else."""
    x_log, y_log = Capture(), Capture()
    x_port = await serve_management(nursery, runtime("X", x_log))
    y_port = await serve_management(nursery, runtime("Y", y_log))
    answers: dict[str, dict[str, Any]] = {}

    def middle(name: str, upstream_port: int) -> Callable[[Link], Any]:
        async def handler(link: Link) -> None:
            async with connect("127.0.0.1", upstream_port, AddpOptions()) as up:
                await link.send(await up.receive())
                request = await link.receive()
                answers[name] = request
                await up.send(request)
                await link.send(await up.receive())
                with contextlib.suppress(LinkEnded):
                    await link.receive()

        return handler

    for name, port in (("X", x_port), ("Y", y_port)):
        mid = await serve_on(nursery, middle(name, port))
        async with open_management("127.0.0.1", mid, SECRET, expect=name) as m:
            assert m.server == name
    assert x_log.ids.count(20120) == y_log.ids.count(20120) == 1
    # X's answer to Y, Y's to X (with the claimed name as it was, or rewritten),
    # and each replayed to its own server in a second session.
    attempts = [
        (y_port, answers["X"]),
        (y_port, {**answers["X"], "server": "Y"}),
        (x_port, answers["Y"]),
        (x_port, {**answers["Y"], "server": "X"}),
        (x_port, answers["X"]),
        (y_port, answers["Y"]),
    ]
    for port, request in attempts:
        fields = {k: v for k, v in request.items() if k not in ("op", "id")}
        answer = await raw_auth(port, fields)
        assert answer["ok"] is False, (port, request)
        assert answer["code"] == "auth-failed"
    assert x_log.ids.count(20120) == y_log.ids.count(20120) == 1


async def test_a_wrong_secret_fails_on_both_sides(nursery: trio.Nursery) -> None:
    log = Capture()
    port = await serve_management(nursery, runtime("X", log))
    with pytest.raises(AuthError, match="wrong proof"):
        async with open_management("127.0.0.1", port, "not-the-secret", expect="X"):
            pass
    assert log.ids.count(20121) == 1
    # The server with the wrong secret: the client refuses it.
    other = await serve_management(nursery, runtime("X"), secret="not-the-secret")
    with pytest.raises(AuthError):
        async with open_management("127.0.0.1", other, SECRET, expect="X"):
            pass


async def test_a_v1_client_gets_one_clear_refusal(nursery: trio.Nursery) -> None:
    port = await serve_management(nursery, runtime("X"))
    async with connect("127.0.0.1", port, AddpOptions()) as link:
        nonce = (await link.receive())["challenge"]
        old = hmac.new(SECRET.encode(), b"cfgha-mgmt-v1:" + nonce.encode(), hashlib.sha256)
        await link.send({"op": "auth", "id": 1, "response": old.hexdigest()})
        answer = await link.receive()
        assert answer["code"] == "auth-failed"
        assert "cfgha-mgmt-v1" in answer["message"]
        assert "upgrade the client" in answer["message"]
        with pytest.raises(LinkEnded, match="authentication failed"):
            await link.receive()


async def test_commands_before_auth_get_one_refusal_and_one_alarm(
    nursery: trio.Nursery,
) -> None:
    log = Capture()
    port = await serve_management(nursery, runtime("X", log))
    answers: list[Any] = []
    async with connect("127.0.0.1", port, AddpOptions()) as link:
        await link.receive()
        for i in range(100):
            link.send_nowait({"op": "snapshot", "id": i})
        await link.flush()
        ended: LinkEnded | None = None
        while ended is None:
            try:
                answers.append(await link.receive())
            except LinkEnded as exc:
                ended = exc
    assert "authentication failed" in str(ended)
    assert len(answers) == 1
    assert "authenticate before 'snapshot'" in answers[0]["message"]
    assert log.ids.count(20121) == 1


# -- the control port ------------------------------------------------------------


def fake_supervisor(log: EventLog) -> Any:
    """What a ControlSession reads of the supervisor for ``auth`` and ``status``."""
    return SimpleNamespace(
        log=log,
        snapshot=lambda now: [{"section": "x"}],
        describe=lambda: {"mode": "single", "acting": True},
    )


async def test_the_control_port_speaks_its_own_scheme(nursery: trio.Nursery) -> None:
    log = Capture()

    async def handler(link: Link) -> None:
        await ControlSession(link, fake_supervisor(log), CONTROL_SECRET).run()

    port = await serve_on(nursery, handler)
    async with open_control(port, CONTROL_SECRET) as c:
        assert c.server == CONTROL_IDENTITY
        assert c.initial_status["servers"] == [{"section": "x"}]
        assert "proof" not in c.initial_status
    # A management client (the management scheme) is refused by the control port,
    # even with the right secret; and a control client refuses a management port.
    with pytest.raises(AuthError, match="cfgha-ctl-v2"):
        async with open_management("127.0.0.1", port, CONTROL_SECRET, purpose=Purpose.MANAGEMENT):
            pass
    mport = await serve_management(nursery, runtime("X"), secret=CONTROL_SECRET)
    with pytest.raises(HandshakeError, match="not cfgha-ctl-v2"):
        async with open_control(mport, CONTROL_SECRET):
            pass


@asynccontextmanager
async def memory_link_to(
    nursery: trio.Nursery, session: Callable[[Link], Any]
) -> AsyncIterator[Link]:
    """A client link over memory streams to a server link running ``session``."""
    client_end, server_end = trio.testing.memory_stream_pair()

    async def server() -> None:
        try:
            async with open_link(server_end, AddpOptions(), name="peer") as link:
                await session(link)
        except LinkEnded:
            pass

    nursery.start_soon(server)
    async with open_link(client_end, AddpOptions(), name="server") as link:
        yield link


async def test_the_control_port_closes_a_silent_connection_at_the_deadline(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log = Capture()

    async def session(link: Link) -> None:
        await ControlSession(link, fake_supervisor(log), CONTROL_SECRET, auth_timeout=5.0).run()

    async with memory_link_to(nursery, session) as link:
        start = trio.current_time()
        assert (await link.receive())["scheme"] == "cfgha-ctl-v2"
        with trio.fail_after(60), pytest.raises(LinkEnded, match="no authentication within 5 s"):
            await link.receive()
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
    assert log.ids.count(40501) == 1


async def test_the_management_port_closes_a_silent_connection_at_the_deadline(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log = Capture()
    rt = runtime("X", log)

    async def session(link: Link) -> None:
        await ManagementSession(link, rt, SECRET, auth_timeout=3.0).run()

    async with memory_link_to(nursery, session) as link:
        start = trio.current_time()
        await link.receive()
        with trio.fail_after(60), pytest.raises(LinkEnded, match="no authentication within 3 s"):
            await link.receive()
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)
    assert log.ids.count(20121) == 1


async def test_an_authenticated_connection_outlives_the_deadline(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    from confserv.wire.auth import ClientHandshake

    rt = runtime("X")

    async def session(link: Link) -> None:
        await ManagementSession(link, rt, SECRET, auth_timeout=1.0).run()

    async with memory_link_to(nursery, session) as link:
        client = ClientHandshake((Purpose.MANAGEMENT,), SECRET, "X")
        await link.send({"op": "auth", "id": 1, **client.challenge(await link.receive())})
        client.verify(await link.receive())
        await trio.sleep(30)
        await link.send({"op": "status", "id": 2})
        assert (await link.receive())["ok"] is True


# -- the supervisor --------------------------------------------------------------


async def test_the_supervisor_talks_only_to_the_server_its_section_names(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Server 'b' of the pair (same secret) answers on the port the supervisor
    has for 'a' (as when a process took a stopped server's port): the
    supervisor's command for 'a' is refused there before any answer is sent."""
    from scs.config import load_scs_settings
    from scs.supervisor import Supervisor

    b_log = Capture()
    b_port = await serve_management(nursery, runtime("b", b_log))
    a_port = await serve_management(nursery, runtime("a"))
    conf = tmp_path / "scs.conf"
    conf.write_text(
        f"[a]\nport = 3000\nserver = b\nmanagement-port = {a_port}\n"
        f"management-secret = {SECRET}\nautostart = false\nautorestart = false\n"
        f"[b]\nport = 3010\nserver = a\nmanagement-port = {b_port}\n"
        f"management-secret = {SECRET}\nautostart = false\nautorestart = false\n"
    )
    settings = load_scs_settings(conf)
    answer, _ = await Supervisor(settings, Capture()).links.command("a", lambda m: m.status())
    assert answer is not None
    assert answer["name"] == "a"
    # a's port now leads to b.
    settings.servers["a"] = dataclasses.replace(settings.servers["a"], management_port=b_port)
    sup = Supervisor(settings, Capture())
    answer, reason = await sup.links.command("a", lambda m: m.switch_to_backup())
    assert answer is None
    assert "the server is 'b', not 'a'" in reason
    await trio.sleep(0.05)
    assert 20120 not in b_log.ids  # b authenticated nobody


async def test_the_control_port_caps_its_connections(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle connections no longer exhaust the supervisor's file descriptors: at
    CONTROL_MAX_UNAUTHENTICATED the oldest unauthenticated one is closed for a
    newcomer, so an operator who authenticates at once gets in through the crowd."""
    from addp.transport.net import EVICTED
    from scs.control import CONTROL_MAX_UNAUTHENTICATED, serve_control

    monkeypatch.setattr("addp.transport.admission.EVICT_MIN_AGE", 0.0)  # its rule: test_eviction.py
    log = Capture()
    settings = SimpleNamespace(
        control_port=0,
        control_secret=CONTROL_SECRET,
        auth_timeout=30.0,
        servers={},
        tls=TlsSettings(),  # plain TCP
    )
    sup = SimpleNamespace(settings=settings, **vars(fake_supervisor(log)))
    port = await nursery.start(serve_control, cast("Any", sup))
    async with contextlib.AsyncExitStack() as stack:
        idle = [
            await stack.enter_async_context(connect("127.0.0.1", port, AddpOptions()))
            for _ in range(CONTROL_MAX_UNAUTHENTICATED)
        ]
        for link in idle:
            await link.receive()  # each got its challenge
        with trio.fail_after(10):
            async with open_control(port, CONTROL_SECRET) as c:
                assert c.server == CONTROL_IDENTITY
            with pytest.raises(LinkEnded, match=EVICTED.split(":")[0]):
                await idle[0].receive()


async def test_the_control_port_refuses_a_big_frame_before_auth(nursery: trio.Nursery) -> None:
    from scs.control import serve_control

    settings = SimpleNamespace(
        control_port=0,
        control_secret=CONTROL_SECRET,
        auth_timeout=30.0,
        servers={},
        tls=TlsSettings(),  # plain TCP
    )
    sup = SimpleNamespace(settings=settings, **vars(fake_supervisor(Capture())))
    port = await nursery.start(serve_control, cast("Any", sup))
    # Raw bytes: our HELLO, then only the header of a 1 MiB frame. (Sending the whole
    # frame races the server's CLOSE: the refused rest of it can reset the socket
    # before the reason is read.)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    hello = encode_frame(FrameKind.HELLO, encode_payload({"versions": [1, 1]}))
    header = encode_frame(FrameKind.MESSAGE, b"\x00")[:4] + (1024 * 1024).to_bytes(4, "big")
    await stream.send_all(hello + header)
    with trio.fail_after(10):
        reason = await close_reason(stream)
    assert reason is not None
    assert "exceeds the limit of 65536" in reason
