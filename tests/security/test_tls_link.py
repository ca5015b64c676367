"""TLS under an ADDP link (addp.transport): what each side says when TLS fails, and the
server's deadline on a TLS handshake (issue 12: TLS on every port).

Real sockets on 127.0.0.1 for the refusals (the kernel's TCP is what a peer meets),
memory streams under MockClock for the deadline.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from addp import AddpOptions, LinkClosedByPeer, LinkEnded
from addp.transport import Link, TlsHandshakeError, connect, serve, use_network
from addp.transport.net import MAX_TLS_REFUSALS
from confserv.wire.tls import client_context, server_context

from ..helpers.tls import TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def _echo(link: Link) -> None:
    link.authenticate()
    async for message in link:
        await link.send(message)


async def _serving(nursery: trio.Nursery, context: ssl.SSLContext, **kwargs: Any) -> int:
    listeners = await nursery.start(
        lambda task_status: serve(
            _echo, 0, AddpOptions(), ssl_context=context, task_status=task_status, **kwargs
        )
    )
    return int(listeners[0].socket.getsockname()[1])


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "addp" and "refused" in r.getMessage()
    ]


async def _round_trip(port: int, context: ssl.SSLContext) -> Any:
    async with connect("127.0.0.1", port, AddpOptions(), ssl_context=context) as link:
        await link.send({"hello": "over TLS"})
        return await link.receive()


async def test_a_plain_client_on_a_tls_port_is_told_so_and_the_port_goes_on(
    files: TlsFiles, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addp")
    port = await _serving(nursery, server_context(files.certificate, files.private_key))
    with pytest.raises(LinkClosedByPeer, match="this port speaks TLS only"):
        async with connect("127.0.0.1", port, AddpOptions(), connect_timeout=5) as link:
            await link.receive()
    assert await _round_trip(port, client_context(files.ca)) == {"hello": "over TLS"}
    lines = _refusals(caplog)
    assert len(lines) == 1, lines
    assert "TLS handshake failed: the peer did not speak TLS (plain ADDP)" in lines[0]
    assert "Traceback" not in caplog.text


async def test_a_client_refuses_a_server_its_ca_did_not_sign(
    files: TlsFiles, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addp")
    context = server_context(files.stranger_certificate, files.stranger_key)
    port = await _serving(nursery, context)
    with pytest.raises(TlsHandshakeError) as caught:
        await _round_trip(port, client_context(files.ca))
    text = str(caught.value)
    assert text.startswith(f"TLS handshake with 127.0.0.1:{port} failed: certificate verify failed")
    assert "\n" not in text
    # and a name the certificate does not carry is refused as well
    port = await _serving(nursery, server_context(files.certificate, files.private_key))
    with pytest.raises(TlsHandshakeError, match=r"certificate verify failed: .*mismatch"):
        async with connect(
            "127.0.0.1",
            port,
            AddpOptions(),
            ssl_context=client_context(files.ca),
            server_hostname="cs.example.com",
        ):
            pass


async def test_a_tls_client_on_a_plain_port_says_the_server_did_not_speak_tls(
    files: TlsFiles, nursery: trio.Nursery
) -> None:
    listeners = await nursery.start(
        lambda task_status: serve(_echo, 0, AddpOptions(), task_status=task_status)
    )
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(TlsHandshakeError, match="the peer did not speak TLS"):
        await _round_trip(port, client_context(files.ca))


async def test_required_client_certificates_refuse_a_client_without_one(
    files: TlsFiles, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addp")
    context = server_context(
        files.certificate, files.private_key, ca=files.ca, client_certificates="required"
    )
    port = await _serving(nursery, context)
    with pytest.raises(TlsHandshakeError, match="the peer refused it: certificate required"):
        await _round_trip(port, client_context(files.ca))
    # a certificate of another CA is refused too; ours is served
    stranger = client_context(files.ca, files.stranger_certificate, files.stranger_key)
    with pytest.raises(TlsHandshakeError, match="the peer refused it"):
        await _round_trip(port, stranger)
    ours = client_context(files.ca, files.certificate, files.private_key)
    assert await _round_trip(port, ours) == {"hello": "over TLS"}
    lines = _refusals(caplog)
    assert len(lines) == 1, lines  # two refusals within the interval: one line
    assert "TLS handshake failed: peer did not return a certificate" in lines[0]


class _MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """Hands out the server ends of memory stream pairs the test makes."""

    class _Socket:
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", 1)

    def __init__(self) -> None:
        self.socket = self._Socket()
        self.send, self._receive = trio.open_memory_channel[trio.abc.Stream](10)

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _MemoryNetwork:
    """Listen on memory streams; each connect is a fresh pair."""

    def __init__(self) -> None:
        self.listener = _MemoryListener()

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        await self.listener.send.send(server)
        return client

    async def open_listeners(self, host: str, port: int) -> list[Any]:
        return [self.listener]


@pytest.fixture
async def memory_port(files: TlsFiles, nursery: trio.Nursery) -> AsyncIterator[_MemoryNetwork]:
    network = _MemoryNetwork()
    with use_network(network):
        await nursery.start(
            lambda task_status: serve(
                _echo,
                0,
                AddpOptions(),
                ssl_context=server_context(files.certificate, files.private_key),
                auth_timeout=5.0,
                max_unauthenticated=1,
                task_status=task_status,
            )
        )
        yield network


async def test_a_stalled_tls_handshake_is_closed_at_the_deadline(
    files: TlsFiles,
    memory_port: _MemoryNetwork,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="addp")
    stalled = await memory_port.open_stream("127.0.0.1", 1)
    started = trio.current_time()
    await stalled.send_all(b"\x16\x03\x01\x02\x00")  # a TLS record header, then nothing
    # it holds the one unauthenticated place: a second client is refused meanwhile
    with pytest.raises(LinkEnded, match="too many connections not authenticated"):
        async with connect(
            "127.0.0.1", 1, AddpOptions(), ssl_context=client_context(files.ca)
        ) as refused:
            await refused.receive()
    with trio.fail_after(60):
        while await stalled.receive_some(1024):
            pass  # the server's end is closed: end of stream
    assert trio.current_time() - started == pytest.approx(5.0, abs=0.01)
    assert any("not finished within 5 s" in line for line in _refusals(caplog))
    await trio.testing.wait_all_tasks_blocked()  # the server's task is done with it
    # the place is free again: a good client is served over TLS
    async with connect("127.0.0.1", 1, AddpOptions(), ssl_context=client_context(files.ca)) as link:
        await link.send("ping")
        assert await link.receive() == "ping"


async def test_a_flood_over_the_cap_is_not_held_for_tls_refusals(
    memory_port: _MemoryNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    holder = await memory_port.open_stream("127.0.0.1", 1)
    await holder.send_all(b"\x16\x03\x01\x02\x00")  # takes the one unauthenticated place
    await trio.testing.wait_all_tasks_blocked()
    flood = [await memory_port.open_stream("127.0.0.1", 1) for _ in range(MAX_TLS_REFUSALS + 4)]
    await trio.testing.wait_all_tasks_blocked()
    closed_at: list[float] = []

    async def until_closed(stream: trio.abc.Stream) -> None:
        while await stream.receive_some(1024):
            pass
        closed_at.append(trio.current_time())

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for stream in flood:
            nursery.start_soon(until_closed, stream)
    waited = sorted(t - started for t in closed_at)
    # 16 are given a TLS handshake (1 s at most, to tell them why); the rest go at once
    assert waited[:4] == [0.0] * 4
    assert waited[4:] == pytest.approx([1.0] * MAX_TLS_REFUSALS, abs=0.01)


async def test_garbage_instead_of_a_tls_handshake_closes_that_connection_only(
    files: TlsFiles, memory_port: _MemoryNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x03\x00\x05hello" + bytes(300)):
        peer = await memory_port.open_stream("127.0.0.1", 1)
        await peer.send_all(garbage)
        with trio.fail_after(10):
            while await peer.receive_some(1024):
                pass
    async with connect("127.0.0.1", 1, AddpOptions(), ssl_context=client_context(files.ca)) as link:
        await link.send("ping")
        assert await link.receive() == "ping"


_first_bytes = st.one_of(
    st.binary(min_size=1, max_size=600),
    st.binary(max_size=600).map(lambda rest: b"\x16\x03\x01" + rest),  # a TLS record's start
)


@settings(max_examples=60)
@given(data=_first_bytes, stall=st.booleans())
def test_any_first_bytes_close_that_connection_only(
    files: TlsFiles, data: bytes, stall: bool
) -> None:
    """Whatever a peer sends first (then silence, or its end of stream), its connection
    is closed within the TLS deadline, nothing escapes the port's handler, and a good
    client is served over TLS next."""
    context = server_context(files.certificate, files.private_key)
    good = client_context(files.ca)
    failures: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info or "handler failed" in record.getMessage():
                failures.append(record.getMessage())

    async def scenario() -> None:
        network = _MemoryNetwork()
        async with trio.open_nursery() as nursery:
            with use_network(network):
                await nursery.start(
                    lambda task_status: serve(
                        _echo,
                        0,
                        AddpOptions(),
                        ssl_context=context,
                        auth_timeout=5.0,
                        task_status=task_status,
                    )
                )
                peer = await network.open_stream("127.0.0.1", 1)
                await peer.send_all(data)
                if not stall:
                    await peer.send_eof()
                started = trio.current_time()
                with trio.fail_after(30):
                    try:
                        while await peer.receive_some(65536):
                            pass
                    except trio.BrokenResourceError:
                        pass
                assert trio.current_time() - started <= 5.0 + 1e-6
                async with connect("127.0.0.1", 1, AddpOptions(), ssl_context=good) as link:
                    await link.send("ping")
                    assert await link.receive() == "ping"
            nursery.cancel_scope.cancel()

    handler = _Catch()
    logging.getLogger("addp").addHandler(handler)
    try:
        trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        logging.getLogger("addp").removeHandler(handler)
    assert failures == []
