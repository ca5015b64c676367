"""Real ADDP links over the simulated network, under trio's MockClock (no real sleeps)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
import trio
import trio.testing

from addp import AddpOptions, AddpTimeout, LinkBroken, LinkEnded
from addp.transport import Link, connect, serve, use_network

from .gate import Gate
from .net import SimNetwork

OPTIONS = AddpOptions.addp(timeout=1.0, remote_timeout=1.0)


class World:
    """A server process ``srv`` echoing on srv:7000, and a client process ``cli``."""

    def __init__(self) -> None:
        self.net = SimNetwork()
        self.gates = {"srv": Gate(), "cli": Gate()}
        self.ended: list[str] = []

    async def serve(self, nursery: trio.Nursery) -> None:
        async def echo(link: Link) -> None:
            try:
                async for msg in link:
                    await link.send({"echo": msg})
            except LinkEnded as exc:
                self.ended.append(type(exc).__name__)

        with use_network(self.net.view("srv", self.gates["srv"])):
            await nursery.start(
                lambda task_status: serve(echo, 7000, OPTIONS, host="srv", task_status=task_status)
            )

    def client(self) -> AbstractContextManager[None]:
        return use_network(self.net.view("cli", self.gates["cli"]))


async def test_two_links_talk_and_ports_belong_to_their_process(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    async with trio.open_nursery() as nursery:
        await world.serve(nursery)
        assert world.net.listening("srv", 7000) == "srv"
        with world.client():
            async with connect("srv", 7000, OPTIONS) as link:
                for i in range(3):
                    await link.send(i)
                    assert await link.receive() == {"echo": i}
                # Quiet for 10 s: ADDP polls keep the link up (no timeout, no hang).
                await trio.sleep(10)
                await link.send("still")
                assert await link.receive() == {"echo": "still"}
            with pytest.raises(ConnectionRefusedError):
                async with connect("srv", 7001, OPTIONS):
                    pass
        world.gates["srv"].kill()
        world.net.release(world.gates["srv"])
        assert world.net.listening("srv", 7000) is None
        nursery.cancel_scope.cancel()


async def test_blackhole_is_found_by_addp_and_heal_lets_bytes_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    async with trio.open_nursery() as nursery:
        await world.serve(nursery)
        with world.client():
            async with connect("srv", 7000, OPTIONS) as link:
                world.net.partition("cli", "srv", "blackhole")
                started = trio.current_time()
                with pytest.raises(AddpTimeout):
                    await link.receive()
                assert 1.0 < trio.current_time() - started <= 2.1  # two ADDP timeouts at most
            # A connection cannot even be made through a blackhole.
            with pytest.raises(TimeoutError):
                async with connect("srv", 7000, OPTIONS, connect_timeout=3):
                    pass
            world.net.heal("cli", "srv")
            # A short blackhole: the bytes are held, then delivered in order.
            async with connect("srv", 7000, OPTIONS) as link:
                world.net.partition("cli", "srv", "blackhole")
                await link.send("held")
                await trio.sleep(0.5)
                world.net.heal("cli", "srv")
                assert await link.receive() == {"echo": "held"}
        nursery.cancel_scope.cancel()


async def test_cut_resets_and_refuses_half_open_and_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    async with trio.open_nursery() as nursery:
        await world.serve(nursery)
        with world.client():
            async with connect("srv", 7000, OPTIONS) as link:
                world.net.partition("cli", "srv", "cut")
                with pytest.raises(LinkBroken):  # the reader sees the reset
                    await link.receive()
            with pytest.raises(ConnectionRefusedError):
                async with connect("srv", 7000, OPTIONS):
                    pass
            world.net.heal("cli", "srv")
            async with connect("srv", 7000, OPTIONS) as link:
                world.net.partition("cli", "srv", "half-open")  # cli -> srv held
                await link.send("one way")
                # The server hears nothing, times out and closes (that way still flows).
                with pytest.raises(LinkEnded):
                    await link.receive()
            world.net.partition("cli", "srv", "delay", delay=0.3)
            async with connect("srv", 7000, OPTIONS) as link:
                sent = trio.current_time()
                await link.send("slow")
                assert await link.receive() == {"echo": "slow"}
                assert trio.current_time() - sent >= 0.6 - 1e-9
        nursery.cancel_scope.cancel()


async def test_pause_stops_io_and_death_closes_the_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    async with trio.open_nursery() as nursery:
        await world.serve(nursery)
        with world.client():
            async with connect("srv", 7000, OPTIONS) as link:
                world.gates["srv"].pause()
                await link.send("while paused")
                with trio.move_on_after(0.9):
                    await link.receive()
                    raise AssertionError("a paused process answered")
                world.gates["srv"].resume()
                assert await link.receive() == {"echo": "while paused"}
                # Killed: the kernel closes its sockets; the client's link ends.
                world.gates["srv"].kill()
                world.net.release(world.gates["srv"])
                with pytest.raises(LinkEnded):
                    await link.receive()
            with pytest.raises(ConnectionRefusedError):
                async with connect("srv", 7000, OPTIONS):
                    pass
        nursery.cancel_scope.cancel()
