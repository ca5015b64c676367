"""The trio adapter, on memory streams and trio's MockClock (no real sleeps)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import trio
import trio.testing

from addp import (
    AddpOptions,
    AddpTimeout,
    Connection,
    ConnectionClosed,
    FrameKind,
    LinkBroken,
    LinkClosedByPeer,
    LinkEnded,
    LinkProtocolError,
    decode_payload,
    encode_frame,
    encode_payload,
)
from addp._frames import FrameDecoder
from addp.transport import HandshakeTimeout, Link, connect, open_link, serve


async def raw_handshake(stream: trio.abc.Stream, opts: AddpOptions) -> Connection:
    """Handshake by hand over ``stream`` and hand back the raw connection."""
    conn = Connection(opts, hello="raw", now=trio.current_time())
    conn.start(trio.current_time())
    await stream.send_all(conn.data_to_send())
    while conn.version is None:
        conn.receive_data(await stream.receive_some(), trio.current_time())
    return conn


async def test_messages_flow_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()
    got: list[Any] = []

    async def echo(stream: trio.abc.Stream) -> None:
        async def run() -> None:
            async with open_link(stream, AddpOptions.addp(1.0), hello="server") as link:
                async for msg in link:
                    await link.send({"echo": msg})

        # The client's CLOSE ends the link; if the echo side is writing (a poll
        # reply) at that instant, the write fails first: either way it ends.
        with pytest.raises((LinkClosedByPeer, LinkBroken)):
            await run()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo, right)
        async with open_link(left, AddpOptions.addp(1.0), hello="client") as link:
            assert link.peer_hello == "server"
            for i in range(100):
                await link.send(i)
            for _ in range(100):
                got.append(await link.receive())
            # Idle for a long time: polls and replies keep the link up.
            await trio.sleep(1000)
            assert link.ended is None
            assert link.connection.keepalive.statistics().polls_sent > 0
    assert got == [{"echo": i} for i in range(100)]


async def test_a_silent_peer_ends_the_link_with_addp_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    timeout = 3.0
    async with trio.open_nursery() as nursery:
        peer: list[Connection] = []

        async def silent_peer() -> None:
            peer.append(await raw_handshake(right, AddpOptions()))
            # From here on the peer never reads nor writes: a hung process.

        nursery.start_soon(silent_peer)
        async with open_link(left, AddpOptions.addp(timeout)) as link:
            last_byte = trio.current_time()
            with pytest.raises(AddpTimeout, match="no answer to poll #1 within 3 s"):
                await link.receive()
            silence = trio.current_time() - last_byte
            assert timeout <= silence <= 2 * timeout
            with pytest.raises(AddpTimeout):
                await link.send("too late")


async def test_the_peer_closing_ends_the_link_with_its_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def closer() -> None:
            async with open_link(right, AddpOptions()) as link:
                await link.aclose("maintenance")

        nursery.start_soon(closer)
        async with open_link(left, AddpOptions()) as link:
            with pytest.raises(LinkClosedByPeer, match="maintenance"):
                await link.receive()


async def test_local_close_ends_iteration_quietly(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw_handshake, right, AddpOptions())
        async with open_link(left, AddpOptions()) as link:
            await link.aclose()
            assert [m async for m in link] == []


async def test_garbage_from_the_peer_is_a_protocol_error_and_the_peer_is_told(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    told: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def bad_peer() -> None:
            await raw_handshake(right, AddpOptions())
            await right.send_all(encode_frame(FrameKind.MESSAGE, b"\xc1"))
            decoder = FrameDecoder()
            while not told:
                for kind, payload in decoder.feed(await right.receive_some()):
                    if kind is FrameKind.CLOSE:
                        told.append(decode_payload(payload))

        nursery.start_soon(bad_peer)
        async with open_link(left, AddpOptions()) as link:
            with pytest.raises(LinkProtocolError, match="not valid msgpack"):
                await link.receive()
    assert "not valid msgpack" in told[0]["reason"]


async def test_no_hello_in_time_is_a_handshake_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, _right = trio.testing.memory_stream_pair()
    with pytest.raises(HandshakeTimeout, match="within 5 s"):
        async with open_link(left, AddpOptions(), handshake_timeout=5):
            pass


async def test_a_bad_hello_fails_the_handshake_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    await right.send_all(encode_frame(FrameKind.HELLO, encode_payload({"versions": [7, 9]})))
    with pytest.raises(LinkProtocolError, match="no protocol version in common"):
        async with open_link(left, AddpOptions()):
            pass


async def test_body_errors_come_out_unwrapped(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw_handshake, right, AddpOptions())
        with pytest.raises(KeyError):
            async with open_link(left, AddpOptions()):
                raise KeyError("mine")


async def test_a_bad_client_over_tcp_does_not_stop_the_server() -> None:
    """Real loopback sockets: garbage closes that one connection, the next client is served."""

    async def echo(link: Link) -> None:
        async for msg in link:
            await link.send(msg)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, echo, 0, AddpOptions())
            port = listeners[0].socket.getsockname()[1]

            bad = await trio.open_tcp_stream("127.0.0.1", port)
            await bad.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            decoder = FrameDecoder()
            answer: list[tuple[FrameKind, bytes]] = []
            while True:
                chunk = await bad.receive_some()
                if not chunk:
                    break
                answer.extend(decoder.feed(chunk))
            await bad.aclose()
            kinds = [k for k, _ in answer]
            assert FrameKind.CLOSE in kinds
            reason = decode_payload(answer[kinds.index(FrameKind.CLOSE)][1])["reason"]
            assert "expected add9" in reason

            async with connect("127.0.0.1", port, AddpOptions.addp(5.0)) as link:
                await link.send("still here?")
                assert await link.receive() == "still here?"
            nursery.cancel_scope.cancel()


def test_connection_closed_event_is_a_value() -> None:
    assert ConnectionClosed("x") == ConnectionClosed("x")


async def test_garbage_right_behind_the_hello_is_still_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    hello = encode_frame(FrameKind.HELLO, encode_payload({"versions": [1, 1]}))
    await right.send_all(hello + b"garbage!")
    with pytest.raises(LinkProtocolError, match="expected add9"):
        async with open_link(left, AddpOptions()) as link:
            await link.receive()


async def test_write_nowait_keeps_what_the_socket_refuses_in_order() -> None:
    """Real sockets: a reader that pauses fills the socket; nothing is lost or reordered."""
    got: list[int] = []
    resume = trio.Event()

    async def slow_reader(link: Link) -> None:
        await resume.wait()  # reads nothing until told: the socket buffers fill
        async for msg in link:
            got.append(msg["n"])
            if msg["n"] == 299:
                return

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, slow_reader, 0, AddpOptions())
            port = listeners[0].socket.getsockname()[1]
            async with connect("127.0.0.1", port, AddpOptions()) as link:
                big = "x" * 65_536
                results = []
                for n in range(300):
                    link.send_encoded_nowait(encode_payload({"n": n, "pad": big}))
                    results.append(link.write_nowait())
                assert results[0] is True  # an empty socket takes the first at once
                assert False in results  # ~20 MB: the socket refused some
                assert link.unsent > 0
                resume.set()
                await link.flush()  # the rest, after what write_nowait left half-written
                assert link.unsent == 0
                with trio.fail_after(10):
                    while len(got) < 300:
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert got == list(range(300))


async def test_write_nowait_on_a_memory_stream_leaves_the_write_to_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _echo_once(b))
        async with open_link(a, AddpOptions()) as link:
            link.send_nowait("queued")
            assert link.write_nowait() is False  # not a socket: the next flush writes it
            await link.flush()
            assert await link.receive() == "queued"


async def _echo_once(stream: trio.abc.Stream) -> None:
    async with open_link(stream, AddpOptions()) as link:
        await link.send(await link.receive())


async def test_a_peer_that_reads_nothing_is_lost_even_while_a_write_to_it_blocks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found in review: the reader waited on the send lock held by a write the peer
    never read, so its ADDP deadline never fired and the link stayed up for ever."""
    ours, theirs = trio.testing.lockstep_stream_pair()  # a write waits for the reader
    async with trio.open_nursery() as nursery:

        async def peer() -> None:
            conn = Connection(AddpOptions(), hello="raw", now=trio.current_time())
            conn.start(trio.current_time())
            async with trio.open_nursery() as hello:  # lockstep: send and read at once
                hello.start_soon(theirs.send_all, conn.data_to_send())
                while conn.version is None:
                    conn.receive_data(await theirs.receive_some(), trio.current_time())
            await trio.sleep_forever()  # then reads nothing and says nothing

        nursery.start_soon(peer)
        async with open_link(ours, AddpOptions.addp(0.5)) as link:
            nursery.start_soon(_blocked_send, link)
            with trio.fail_after(5), pytest.raises(AddpTimeout, match="write to it was blocked"):
                await link.receive()
        nursery.cancel_scope.cancel()


async def _blocked_send(link: Link) -> None:
    with contextlib.suppress(LinkEnded):
        await link.send("x" * 1000)  # the peer never reads it: holds the send lock
