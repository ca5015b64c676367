"""The supervised pair in the simulation: hand-made schedules, the real code throughout."""

from __future__ import annotations

from typing import Any

import trio

from confserv.client.resilient import open_resilient_client
from confserv.wire.errors import ConnectionLostError, RequestError

from .process import SimProcess
from .system import CLIENT_PORT, PAIR, PASSWORD, USER, host_of, installation
from .world import World, run_world


def _world(seed: int = 1) -> World:
    files, template = installation()
    return World(seed, files, template)


async def _writer(world: World, acked: list[dict[str, Any]], stop: trio.Event) -> SimProcess:
    async def body(proc: SimProcess) -> int:
        servers = [(host_of(s), CLIENT_PORT) for s in PAIR]
        async with open_resilient_client(
            servers, app="sim-w", user=USER, password=PASSWORD, reconnect_timeout=0.02
        ) as rc:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = await rc.create("DN", {"name": f"w{n}"})
                except (ConnectionLostError, RequestError):
                    continue
                acked.append({**answer, "name": f"w{n}", "at": trio.current_time()})
                await trio.sleep(0.05)
        return 0

    return await world.spawn("w", body)


def test_the_supervisor_starts_the_pair_and_a_killed_primary_is_failed_over() -> None:
    world = _world()
    acked: list[dict[str, Any]] = []

    async def scenario(w: World) -> float:
        await w.start_supervisor()
        stop = trio.Event()
        with trio.fail_after(20):
            while not (w.alive("confserv") and w.alive("backup") and w.alive("proxy")):
                await trio.sleep(0.05)
        await _writer(w, acked, stop)
        await trio.sleep(4)
        killed_at = trio.current_time()
        first = w.processes["confserv"]
        first.kill()
        await trio.sleep(6)
        stop.set()
        await trio.sleep(0.5)
        # The supervisor restarted the killed server (a new process); it follows as backup.
        restarted = w.alive("confserv")
        assert restarted is not None
        assert restarted.pid != first.pid
        return killed_at

    killed_at = run_world(world, scenario)
    assert world.crashes == [], world.crashes[0]
    before = [a for a in acked if a["at"] < killed_at]
    after = [a for a in acked if a["at"] > killed_at + 1.0]
    assert before
    assert after
    assert {a["epoch"] for a in before} == {1}
    assert {a["epoch"] for a in after} == {2}, world.dump()
    stored = {n for (n,) in world.db.conn.execute("SELECT name FROM cfg_object WHERE type='DN'")}
    assert {a["name"] for a in acked} <= stored
    first_after = min(a["at"] for a in acked if a["epoch"] == 2)
    assert first_after - killed_at < 1.0  # proof of death: forced at once
