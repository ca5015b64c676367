"""Application messages to a parked link, handed over by the hub (addp.transport.hub).

Real loopback TCP against a peer that handshakes by hand (ADDP off) and then
sends frames when told. Waits are for conditions with deadlines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from addp import AddpOptions, Connection, FrameKind, encode_frame, encode_payload
from addp.transport import Link, connect
from addp.transport import hub as hub_module
from addp.transport.link_core import BUSY_GAP, INBOX_SIZE

from .test_hub import raw_peer

pytestmark = pytest.mark.skipif(not hub_module.available(), reason="the hub needs epoll")


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds, failing after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.005)


def frames(values: list[Any]) -> bytes:
    """The MESSAGE frames of ``values``, back to back."""
    return b"".join(encode_frame(FrameKind.MESSAGE, encode_payload(v)) for v in values)


@asynccontextmanager
async def sender() -> AsyncIterator[tuple[Link, trio.MemorySendChannel[bytes]]]:
    """A link to a peer that writes whatever bytes are put in the returned channel."""
    send, receive = trio.open_memory_channel[bytes](100)

    async def write_what_comes(stream: trio.SocketStream, conn: Connection) -> None:
        async for data in receive:
            await stream.send_all(data)
        await trio.sleep_forever()

    async with (
        raw_peer(write_what_comes) as port,
        connect("127.0.0.1", port, AddpOptions()) as link,
    ):
        yield link, send


def count_parks(link: Link) -> list[int]:
    """Record every time ``link``'s reader parks (the list grows by one per park)."""
    calls: list[int] = []
    park = link._park

    def counted(fd: int) -> Coroutine[Any, Any, list[Any]]:
        calls.append(fd)
        return park(fd)

    link._park = counted  # type: ignore[method-assign]
    return calls


async def test_quiet_messages_reach_the_consumer_while_the_reader_stays_parked() -> None:
    async with sender() as (link, peer):
        parks = count_parks(link)
        await peer.send(frames([0]))
        with trio.fail_after(5):
            assert await link.receive() == 0  # the reader read it itself, then parks
        await until(lambda: link._parked_fd is not None)
        for n in range(1, 6):
            await trio.sleep(BUSY_GAP * 1.5)  # a quiet subscriber's pace
            await peer.send(frames([n]))
            with trio.fail_after(5):
                assert await link.receive() == n
        assert link._parked_fd is not None
        assert len(parks) == 1  # the hub handed the other five over in place


async def test_a_router_gets_the_inbox_first_then_every_message_in_order() -> None:
    async with sender() as (link, peer):
        await peer.send(frames([0]))
        await until(lambda: link._inbox.statistics().current_buffer_used == 1)
        await until(lambda: link._parked_fd is not None)
        await peer.send(frames([1, 2]))  # read by the hub for the parked link: the inbox
        await until(lambda: link._inbox.statistics().current_buffer_used == 3)
        assert link.inbox_count == 3  # the count the reader's flow control reads
        got: list[Any] = []
        link.set_router(got.append)
        assert got == [0, 1, 2]
        assert (link.inbox_bytes, link.inbox_count) == (0, 0)
        await peer.send(frames([3]))
        await trio.sleep(BUSY_GAP * 1.5)
        await peer.send(frames([4, 5]))
        await until(lambda: len(got) == 6)
        assert got == [0, 1, 2, 3, 4, 5]
        assert link._inbox.statistics().current_buffer_used == 0


async def test_a_router_that_fails_ends_the_reader_with_its_error() -> None:
    def refuse(message: Any) -> None:
        raise ValueError(f"no room for {message!r}")

    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match="no room for 7"), flatten_subgroups=True
    ):
        async with sender() as (link, peer):
            await peer.send(frames([0]))
            with trio.fail_after(5):
                assert await link.receive() == 0
            await until(lambda: link._parked_fd is not None)
            link.set_router(refuse)
            await peer.send(frames([7]))  # read by the hub: raised in the reader
            await trio.sleep_forever()


async def test_a_full_inbox_wakes_the_reader_and_nothing_is_lost_or_reordered() -> None:
    total = INBOX_SIZE * 20  # more than one read of the hub (64 KiB) carries
    async with sender() as (link, peer):
        await peer.send(frames([-1]))
        with trio.fail_after(5):
            assert await link.receive() == -1
        await until(lambda: link._parked_fd is not None)
        await peer.send(frames(list(range(total))))  # one burst, nobody reading
        await until(lambda: not link._room.is_set())
        await trio.sleep(0.1)
        # The reader left the hub to wait for room; the socket holds the rest.
        assert link._parked_fd is None
        held = link._inbox.statistics().current_buffer_used
        assert INBOX_SIZE <= held < total
        with trio.fail_after(10):
            assert [await link.receive() for _ in range(total)] == list(range(total))


async def test_a_flood_wakes_a_parked_reader_and_a_quiet_spell_parks_it_again() -> None:
    async with sender() as (link, peer):
        parks = count_parks(link)
        await peer.send(frames([0]))
        with trio.fail_after(5):
            assert await link.receive() == 0
        await until(lambda: link._parked_fd is not None)
        assert len(parks) == 1
        # Messages one right after the other: the hub hands the first over, finds the
        # second within BUSY_GAP and wakes the reader to read the busy socket itself.
        for n in range(1, 51):
            await peer.send(frames([n]))
            with trio.fail_after(5):
                assert await link.receive() == n
            if link._parked_fd is None:
                break
        assert link._parked_fd is None
        assert link._busy
        await trio.sleep(BUSY_GAP * 3)  # quiet: the next message finds the reader idle
        await peer.send(frames(["after"]))
        with trio.fail_after(5):
            assert await link.receive() == "after"
        await until(lambda: link._parked_fd is not None)
        assert len(parks) == 2
