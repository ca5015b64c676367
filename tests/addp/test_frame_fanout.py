"""One frame built once, written to many links: ``Link.send_frame_nowait`` and
``Connection.claim_direct_write`` (the fan-out's direct path)."""

from __future__ import annotations

import functools

import pytest
import trio

from addp import (
    AddpOptions,
    Connection,
    FrameKind,
    LocalProtocolError,
    MessageTooLargeError,
    encode_frame,
    encode_payload,
)
from addp.transport import Link, connect, serve

from .test_connection import open_pair, pump


def framed(value: object) -> tuple[bytes, bytes]:
    data = encode_payload(value)
    return data, encode_frame(FrameKind.MESSAGE, data)


def test_a_frame_written_by_the_caller_is_checked_as_a_queued_one_would_be() -> None:
    a = Connection(AddpOptions(), max_frame_size=4096)
    b = Connection(AddpOptions(), max_frame_size=2048)
    assert a.claim_direct_write(10, 0) is False  # not open yet: queue it instead
    assert not a.has_data_to_send
    a.start(0)
    b.start(0)
    pump(a, b, 0)
    pump(b, a, 0)
    with pytest.raises(MessageTooLargeError, match="limit of 2048"):
        a.claim_direct_write(3000, 0)
    a.send("queued", 0)
    sent_before = a.keepalive.statistics().last_sent
    assert a.claim_direct_write(10, 1.0) is False  # it would pass the queued frame
    assert a.keepalive.statistics().last_sent == sent_before  # nothing counted
    assert a.data_to_send()  # the queued frame is still there, unharmed
    assert a.claim_direct_write(10, 1.5) is True
    assert a.keepalive.statistics().last_sent == 1.5
    a.close("done", 2)
    assert a.claim_direct_write(10, 3) is False
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        a.send_encoded(b"\x01", 3)  # what the caller then does says what is wrong


def test_the_frame_written_directly_decodes_as_a_queued_message() -> None:
    a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    data, frame = framed({"notify": {"serial": 7}})
    assert a.claim_direct_write(len(data), 0)
    events = b.receive_data(frame, 0)
    assert [getattr(e, "payload", None) for e in events] == [{"notify": {"serial": 7}}]


async def test_direct_and_queued_sends_mixed_arrive_whole_and_in_order() -> None:
    """Real sockets and a reader that pauses: the socket fills, the direct path falls
    back to the queue, nothing is lost, torn or reordered."""
    got: list[int] = []
    resume = trio.Event()

    async def slow_reader(link: Link) -> None:
        await resume.wait()
        async for msg in link:
            got.append(msg["n"])
            if msg["n"] == 299:
                return

    big = "x" * 65_536
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, slow_reader, 0, AddpOptions())
            port = listeners[0].socket.getsockname()[1]
            async with connect("127.0.0.1", port, AddpOptions()) as link:
                results = []
                for n in range(300):
                    data, frame = framed({"n": n, "pad": big})
                    if n % 3 == 1:
                        link.send_encoded_nowait(data)  # queued, not written
                    else:
                        results.append(link.send_frame_nowait(data, frame))
                assert results[0] is True  # an empty socket takes the first at once
                assert False in results  # ~20 MB: the socket refused some
                resume.set()
                await link.flush()
                assert link.unsent == 0
                with trio.fail_after(10):
                    while len(got) < 300:
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert got == list(range(300))


async def test_a_frame_too_large_for_the_peer_is_refused_and_nothing_is_written() -> None:
    async def hold(link: Link) -> None:
        await link.wait_ended()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(serve, hold, 0, AddpOptions(), max_frame_size=1024)
        )
        port = listeners[0].socket.getsockname()[1]
        async with connect("127.0.0.1", port, AddpOptions()) as link:
            assert link.connection.peer_max_frame_size == 1024
            data, frame = framed("y" * 2000)
            with pytest.raises(MessageTooLargeError):
                link.send_frame_nowait(data, frame)
            assert link.unsent == 0
            assert link.send_frame_nowait(*framed("small")) is True
        nursery.cancel_scope.cancel()
