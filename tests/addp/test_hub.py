"""Idle links parked with the hub (addp.transport.hub), over real loopback TCP.

Waits are for conditions with deadlines; the timing bounds get slack for a
loaded machine only on the late side (never early).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

from addp import (
    AddpOptions,
    AddpTimeout,
    Connection,
    FrameKind,
    LinkClosedByPeer,
    LinkEnded,
    LinkProtocolError,
    encode_frame,
    encode_payload,
)
from addp._frames import FrameDecoder
from addp.transport import Link, connect, serve
from addp.transport import hub as hub_module

pytestmark = pytest.mark.skipif(not hub_module.available(), reason="the hub needs epoll")

T = 0.3
#: Late-side allowance for a loaded machine (the bounds are never relaxed early).
LATE = 1.0


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds, failing after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.01)


def hub() -> hub_module.Hub:
    found = hub_module._HUB.get()
    assert found is not None, "no link has parked"
    return found


@asynccontextmanager
async def echo_pair(count: int) -> AsyncIterator[tuple[list[Link], list[Link]]]:
    """``count`` links from this run to an echo server in this run, all at ADDP ``T``."""
    served: list[Link] = []

    async def echo(link: Link) -> None:
        served.append(link)
        try:
            async for msg in link:
                await link.send(msg)
        except LinkEnded:
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, echo, 0, AddpOptions.addp(T))
        port = listeners[0].socket.getsockname()[1]
        async with AsyncExitStack() as stack:
            links = [
                await stack.enter_async_context(connect("127.0.0.1", port, AddpOptions.addp(T)))
                for _ in range(count)
            ]
            await until(lambda: len(served) == count)
            yield links, served
        nursery.cancel_scope.cancel()


async def test_idle_links_park_and_keep_each_other_alive_with_one_poller_each() -> None:
    async with echo_pair(10) as (links, served):
        await until(lambda: hub_module._HUB.get() is not None and hub().parked == 20)
        before = hub().served
        ends = links + served
        polls = [end.connection.keepalive.statistics().polls_sent for end in ends]
        start = trio.current_time()
        # Every link: at least 3 polls answered, by whichever end polls.
        await until(
            lambda: all(
                a.connection.keepalive.statistics().replies_received
                + b.connection.keepalive.statistics().replies_received
                >= 3
                for a, b in zip(links, served, strict=True)
            )
        )
        elapsed = trio.current_time() - start
        assert all(end.ended is None for end in ends)
        assert hub().served > before  # frames and deadlines served without the readers
        sent = sum(e.connection.keepalive.statistics().polls_sent for e in ends) - sum(polls)
        # One poll per link and interval (the ends do not both poll), plus a crossing each.
        assert sent <= len(links) * (elapsed / T + 2)


async def test_a_message_reaches_a_parked_link_and_its_answer_comes_back() -> None:
    async with echo_pair(3) as (links, _served):
        await until(lambda: hub_module._HUB.get() is not None and hub().parked == 6)
        for i, link in enumerate(links):
            await link.send({"n": i})
        for i, link in enumerate(links):
            with trio.fail_after(5):
                assert await link.receive() == {"n": i}
        # Quiet again: every reader parks again.
        await until(lambda: hub().parked == 6)


@asynccontextmanager
async def raw_peer(
    behave: Callable[[trio.SocketStream, Connection], Any],
) -> AsyncIterator[int]:
    """A server on a free port that handshakes by hand (ADDP off) and then runs ``behave``."""

    async def handler(stream: trio.SocketStream) -> None:
        conn = Connection(AddpOptions(), hello="raw", now=trio.current_time())
        conn.start(trio.current_time())
        await stream.send_all(conn.data_to_send())
        while conn.version is None:
            conn.receive_data(await stream.receive_some(), trio.current_time())
        await behave(stream, conn)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handler, 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def test_a_peer_silent_after_one_answer_is_lost_by_the_hub_never_before_2t() -> None:
    answered = trio.Event()
    last_byte: list[float] = []

    async def answer_once_then_hang(stream: trio.SocketStream, conn: Connection) -> None:
        decoder = FrameDecoder()
        while not answered.is_set():
            for kind, payload in decoder.feed(await stream.receive_some()):
                if kind is FrameKind.POLL:
                    await stream.send_all(encode_frame(FrameKind.REPLY, payload))
                    last_byte.append(trio.current_time())
                    answered.set()
        await trio.sleep_forever()  # reads nothing more, sends nothing more

    async with (
        raw_peer(answer_once_then_hang) as port,
        connect("127.0.0.1", port, AddpOptions.addp(T)) as link,
    ):
        with pytest.raises(AddpTimeout, match="no answer to poll #2"), trio.fail_after(7):
            await link.receive()
        lost_at = trio.current_time()
    silence = lost_at - last_byte[0]
    assert 2 * T <= silence <= 2 * T + LATE  # the loss is served on time, not on the grid


async def test_a_close_or_garbage_to_a_parked_link_ends_it_with_the_reason() -> None:
    go = trio.Event()

    async def close_later(stream: trio.SocketStream, conn: Connection) -> None:
        await go.wait()
        conn.close("going away", trio.current_time())
        await stream.send_all(conn.data_to_send())
        await trio.sleep_forever()

    async with (
        raw_peer(close_later) as port,
        connect("127.0.0.1", port, AddpOptions.addp(T)) as link,
    ):
        await until(lambda: link._parked_fd is not None)
        go.set()
        with pytest.raises(LinkClosedByPeer, match="going away"), trio.fail_after(5):
            await link.receive()

    go = trio.Event()

    async def garbage_later(stream: trio.SocketStream, conn: Connection) -> None:
        await go.wait()
        await stream.send_all(b"\x00\x01not a frame")
        await trio.sleep_forever()

    async with (
        raw_peer(garbage_later) as port,
        connect("127.0.0.1", port, AddpOptions.addp(T)) as link,
    ):
        await until(lambda: link._parked_fd is not None)
        go.set()
        with pytest.raises(LinkProtocolError, match="expected add9"), trio.fail_after(5):
            await link.receive()


async def test_a_parked_link_closed_locally_leaves_the_hub() -> None:
    async with echo_pair(2) as (links, _served):
        await until(lambda: hub_module._HUB.get() is not None and hub().parked == 4)
        await links[0].aclose("done")
        await until(lambda: hub().parked == 2)  # its reader and the server's end left
        await links[1].send("still here")
        with trio.fail_after(5):
            assert await links[1].receive() == "still here"


def test_floor_tick_rounds_down_onto_the_grid_by_less_than_a_tick() -> None:
    for deadline in (0.0, 0.001, 1.0, 1.0 - 1e-9, 12345.678):
        when = hub_module.floor_tick(deadline)
        assert deadline - hub_module.TICK < when <= deadline
        assert when / hub_module.TICK == int(when / hub_module.TICK)


def test_encoded_polls_are_single_frames() -> None:
    # What the hub's fast path sees from a peer: one frame per poll.
    assert len(encode_frame(FrameKind.POLL, encode_payload(5))) == 9


async def test_a_link_with_a_timeout_shorter_than_eight_ticks_does_not_park() -> None:
    short = hub_module.MIN_TIMEOUT / 2
    served: list[Link] = []

    async def hold(link: Link) -> None:
        served.append(link)
        await link.wait_ended()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, hold, 0, AddpOptions.addp(short))
        port = listeners[0].socket.getsockname()[1]
        async with connect("127.0.0.1", port, AddpOptions.addp(short)) as link:
            await until(lambda: bool(served))
            stats = link.connection.keepalive.statistics
            peer = served[0].connection.keepalive.statistics
            # Polls answered for a few intervals: served by the readers, never parked.
            await until(lambda: stats().replies_received + peer().replies_received >= 4)
            assert hub_module._HUB.get() is None  # no link of this run ever parked
            assert link.ended is None
        nursery.cancel_scope.cancel()
