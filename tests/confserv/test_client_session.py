"""The client library's request/answer session, on memory streams and trio's MockClock."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

from addp import AddpOptions, LinkEnded
from addp.transport import open_link
from confserv.client.session import Session
from confserv.wire.errors import ConnectionLostError, NotSentError


async def test_a_request_after_the_reader_is_gone_fails_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found by the chaos runs: a proxy relayed a write on a session whose reader had
    been cancelled (a redirect) while its link still took writes; the answer could
    never be routed and the client waited forever."""
    a, b = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_silent_peer, b)
        async with open_link(a, AddpOptions()) as link:
            session = Session(link)
            with trio.CancelScope() as reader_scope:
                reader_scope.cancel()
                await session.run_reader()  # cancelled at once: the reader's finally runs
            assert session.closed.is_set()
            with trio.fail_after(5), pytest.raises(NotSentError, match="connection is closed"):
                await session.request("status")
        nursery.cancel_scope.cancel()


async def test_a_request_in_flight_when_the_reader_ends_is_answered_with_connection_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_silent_peer, b)
        async with open_link(a, AddpOptions()) as link:
            session = Session(link)
            reader_scope = trio.CancelScope()

            async def reader() -> None:
                with reader_scope:
                    await session.run_reader()

            nursery.start_soon(reader)
            async with trio.open_nursery() as inner:

                async def cancel_soon() -> None:
                    await trio.sleep(1)
                    reader_scope.cancel()

                inner.start_soon(cancel_soon)
                with trio.fail_after(5), pytest.raises(ConnectionLostError):
                    await session.request("status")  # the peer never answers
        nursery.cancel_scope.cancel()


async def _silent_peer(stream: trio.abc.Stream) -> None:
    async with open_link(stream, AddpOptions()) as link:
        async for _ in link:
            pass  # reads, never answers


async def test_unread_notifications_end_the_link_instead_of_stalling_every_answer(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import confserv.client.exchange

    monkeypatch.setattr(confserv.client.exchange, "NOTIFY_BUFFER", 3)
    a, b = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def chatty_peer() -> None:
            with contextlib.suppress(LinkEnded):  # the client ends the link, as it should
                async with open_link(b, AddpOptions()) as link:
                    await link.receive()  # the request: never answered, only notifications
                    for serial in range(1, 10):
                        await link.send({"notify": {"serial": serial}})
                    await trio.sleep_forever()

        nursery.start_soon(chatty_peer)
        async with open_link(a, AddpOptions()) as link:
            session = Session(link)
            nursery.start_soon(session.run_reader)
            with trio.fail_after(5), pytest.raises(ConnectionLostError, match="not read"):
                await session.request("status")  # the application never reads notifications
        nursery.cancel_scope.cancel()
