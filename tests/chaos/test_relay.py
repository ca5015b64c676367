"""The fault-injecting relay, over real loopback sockets, with ADDP links through it."""

from __future__ import annotations

import pytest
import trio

from addp import AddpOptions, AddpTimeout, LinkEnded
from addp.transport import Link, connect, serve

from .relay import Relay

pytestmark = pytest.mark.integration


async def echo(link: Link) -> None:
    try:
        async for msg in link:
            await link.send(msg)
    except LinkEnded:
        pass


async def start(nursery: trio.Nursery) -> Relay:
    listeners = await nursery.start(serve, echo, 0, AddpOptions())
    relay = Relay("127.0.0.1", listeners[0].socket.getsockname()[1])
    await nursery.start(relay.serve)
    return relay


async def test_pass_delay_and_cut() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            relay = await start(nursery)
            async with connect("127.0.0.1", relay.port, AddpOptions()) as link:
                await link.send("a")
                assert await link.receive() == "a"
                relay.set("pass", delay=0.2)
                t0 = trio.current_time()
                await link.send("b")
                assert await link.receive() == "b"
                assert trio.current_time() - t0 >= 0.4  # delayed both ways
                relay.set("cut")
                with pytest.raises(LinkEnded):
                    await link.receive()
            with pytest.raises((OSError, LinkEnded)):
                async with connect("127.0.0.1", relay.port, AddpOptions(), connect_timeout=2):
                    pass
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["blackhole", "half-open"])
async def test_a_silent_path_is_found_by_addp_only(mode: str) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            relay = await start(nursery)
            async with connect("127.0.0.1", relay.port, AddpOptions.addp(0.3)) as link:
                await link.send("x")
                assert await link.receive() == "x"
                relay.set(mode)  # half-open: our bytes reach the peer, its replies do not
                with pytest.raises(AddpTimeout):
                    await link.receive()
            nursery.cancel_scope.cancel()


async def test_held_bytes_flow_again_when_the_partition_heals() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            relay = await start(nursery)
            async with connect("127.0.0.1", relay.port, AddpOptions()) as link:
                relay.set("blackhole")
                await link.send("held")
                with trio.move_on_after(0.3) as waited:
                    await link.receive()
                assert waited.cancelled_caught  # nothing came back while partitioned
                relay.set("pass")
                assert await link.receive() == "held"  # not dropped: TCP would retransmit
            nursery.cancel_scope.cancel()


async def test_delay_adds_latency_without_cutting_bandwidth() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            relay = await start(nursery)
            async with connect("127.0.0.1", relay.port, AddpOptions()) as link:
                relay.set("pass", delay=0.2)
                t0 = trio.current_time()
                for i in range(10):
                    await link.send(i)
                    await trio.sleep(0.02)  # separate chunks, each delayed on its own
                got = [await link.receive() for _ in range(10)]
                took = trio.current_time() - t0
                assert got == list(range(10))
                assert 0.4 <= took < 1.5  # per-chunk pauses in series would take >= 4 s
            nursery.cancel_scope.cancel()
