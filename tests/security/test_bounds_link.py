"""Deadlines and byte bounds of one ADDP link, under trio's MockClock (issue 12).

The audit: a connection that answers polls, or drips one byte of a frame
every 2 s, was never closed on any port; the inbox was bounded at 1,024
messages, not bytes (4 MiB frames: about 4 GiB held by one connection).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from addp import (
    AddpOptions,
    Connection,
    FrameKind,
    LinkClosedByPeer,
    LinkEnded,
    encode_frame,
    encode_payload,
)
from addp._guard import ConnectionGuard
from addp.transport import open_link
from addp.transport.link import INBOX_BYTES, DeadlineExpired

MiB = 1 << 20
POLLING = AddpOptions.addp(1.0)


# -- the pure guard -----------------------------------------------------------

guard_steps = st.lists(
    st.one_of(
        st.tuples(st.just("bytes"), st.integers(0, 3), st.integers(0, 2)),
        st.tuples(st.just("pause"), st.floats(0, 20), st.just(0)),
        st.tuples(st.just("auth"), st.just(0), st.just(0)),
        st.tuples(st.just("wait"), st.floats(0, 20), st.just(0)),
    ),
    max_size=60,
)


@given(guard_steps, st.sampled_from([None, 5.0]), st.sampled_from([None, 10.0]))
def test_the_guard_expires_exactly_at_its_model_deadline(
    steps: list[tuple[str, float, int]], auth: float | None, frame: float | None
) -> None:
    now = 0.0
    guard = ConnectionGuard(now, auth_timeout=auth, frame_timeout=frame)
    auth_deadline = None if auth is None else auth
    frame_deadline: float | None = None
    for kind, a, b in steps:
        if kind == "bytes":
            buffered, completed = int(a), b
            if buffered == 0:
                frame_deadline = None
            elif (completed or frame_deadline is None) and frame is not None:
                frame_deadline = now + frame
            guard.bytes_received(now, buffered=buffered, completed=completed)
        elif kind == "pause":
            if frame_deadline is not None:
                frame_deadline += a
            guard.paused(a)
        elif kind == "auth":
            auth_deadline = None
            guard.authenticate()
        else:
            now += a
        deadlines = [d for d in (auth_deadline, frame_deadline) if d is not None]
        expected = min(deadlines) if deadlines else None
        reason = guard.check(now)
        if expected is not None and now >= expected:
            assert reason is not None
            return  # expired for good
        assert reason is None
        assert guard.next_deadline() == expected


def test_a_connection_not_authenticated_in_time_queues_a_close() -> None:
    server = Connection(AddpOptions.addp(1.0), now=0.0, auth_timeout=5.0)
    client = Connection(AddpOptions.addp(1.0), now=0.0)
    server.start(0)
    client.start(0)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send(), 0.0)
    now = 0.0
    while not server.closed:  # the client answers every poll: alive, not authenticated
        deadline = server.next_deadline()
        assert deadline is not None
        now = deadline
        server.handle_timeout(now)
        client.receive_data(server.data_to_send(), now)
        server.receive_data(client.data_to_send(), now)
    assert now == 5.0
    assert server.guard.expired == "not authenticated within 5 s"


# -- the trio link ------------------------------------------------------------


async def serve_one(
    stream: trio.abc.Stream,
    handler: Any,
    options: AddpOptions = POLLING,
    **kwargs: Any,
) -> LinkEnded | None:
    try:
        async with open_link(stream, options, **kwargs) as link:
            await handler(link)
    except LinkEnded as exc:
        return exc
    return None


async def _idle(link: Any) -> None:
    """A handler that takes every message and answers none."""
    async for _ in link:
        pass


async def test_a_link_answering_polls_but_not_authenticating_is_closed_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    ended: list[LinkEnded | None] = []

    async def server() -> None:
        ended.append(await serve_one(right, _idle, auth_timeout=5.0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        start = trio.current_time()
        with pytest.raises(LinkClosedByPeer, match="not authenticated within 5 s"):
            async with open_link(left, AddpOptions.addp(1.0)) as link:
                await link.receive()  # answers polls meanwhile
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
    assert isinstance(ended[0], DeadlineExpired)


async def test_an_authenticated_link_is_not_closed(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()

    async def auth_then_idle(link: Any) -> None:
        assert await link.receive() == "login"
        link.authenticate()
        async for _ in link:
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(serve_one, right, auth_then_idle, auth_timeout=5.0))
        async with open_link(left, AddpOptions.addp(1.0)) as link:
            await link.send("login")
            await trio.sleep(60)
            assert link.ended is None
        nursery.cancel_scope.cancel()


async def test_a_frame_dripped_one_byte_every_2_s_is_closed_at_the_frame_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    ended: list[LinkEnded | None] = []

    async def server() -> None:
        ended.append(await serve_one(right, _idle, AddpOptions.addp(3.0), frame_timeout=10.0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        conn = Connection(AddpOptions(), now=trio.current_time())
        conn.start(trio.current_time())
        await left.send_all(conn.data_to_send())
        frame = encode_frame(FrameKind.MESSAGE, encode_payload("x" * 100))
        start = trio.current_time()
        with trio.fail_after(60):
            for byte in frame:  # ADDP stays content: a byte every 2 s
                try:
                    await left.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break
                await trio.sleep(2)
                if ended:
                    break
    assert isinstance(ended[0], DeadlineExpired)
    assert "a frame was not completed within 10 s" in str(ended[0])
    assert trio.current_time() - start <= 12.1


async def test_the_inbox_is_bounded_in_bytes_and_the_sender_meets_back_pressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.socket.socketpair()  # real kernel buffers: real back-pressure
    left, right = trio.SocketStream(a), trio.SocketStream(b)
    held: list[int] = []
    release = trio.Event()

    async def stuck(link: Any) -> None:
        await release.wait()  # the handler is blocked (an answer the peer does not read)
        held.append(link._inbox.statistics().current_buffer_used)
        async for _ in link:
            pass

    sent = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, right, stuck)
        async with open_link(left, AddpOptions(), max_frame_size=8 * MiB) as link:
            big = "x" * (4 * MiB - 64)
            with trio.move_on_after(30):
                for _ in range(40):  # 160 MiB offered
                    await link.send(big)
                    sent += 1
            release.set()
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    # The reader stopped reading: the sender was blocked after about two frames.
    print(f"inbox held {held[0]} messages of 4 MiB; the sender got {sent} of 40 out")
    assert held[0] * 4 <= INBOX_BYTES // MiB + 8, held
    assert sent < 5, sent
