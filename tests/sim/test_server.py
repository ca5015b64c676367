"""One real server on the simulated database and network; the database's own faults."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from confserv.client.session import open_client, open_management
from confserv.logs import events
from confserv.wire.errors import UnavailableError

from .gate import Gate
from .process import SimProcess
from .store import SimDatabase
from .system import CLIENT_PORT, MANAGEMENT_PORT, PASSWORD, SECRET, USER, host_of, installation
from .world import World, run_world


def _world(seed: int = 1) -> World:
    files, template = installation()
    return World(seed, files, template)


async def _until(check: Any, timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.01)


def test_a_server_takes_the_lease_and_serves_writes_and_reads() -> None:
    world = _world()
    seen: dict[str, Any] = {}

    async def client(proc: SimProcess) -> int:
        async with open_client(
            [(host_of("confserv"), CLIENT_PORT)], app="sim-c", user=USER, password=PASSWORD
        ) as c:
            seen["created"] = await c.create("DN", {"name": "dn-1"})
            seen["read"] = await c.read("DN", {"name": "dn-1"})
        async with open_management(host_of("confserv"), MANAGEMENT_PORT, SECRET) as m:
            seen["status"] = await m.status()
        return 0

    async def scenario(w: World) -> None:
        server = await w.start_server("confserv")
        taken = [t for t in w.trace if t[2] == events.LEASE_TAKEN.id]
        await _until(lambda: any(t[2] == events.ROLE_CHANGED.id for t in w.trace))
        proc = await w.spawn("client", client)
        await proc.ended.wait()
        assert proc.code == 0, proc.err.getvalue()
        server.terminate()
        await server.ended.wait()
        seen["code"] = server.code
        seen["taken"] = taken

    run_world(world, scenario)
    assert world.crashes == []
    assert seen["created"]["epoch"] == 1
    assert [o["name"] for o in seen["read"]] == ["dn-1"]
    assert seen["status"]["role"] == "primary"
    assert seen["status"]["pid"] == world.processes["confserv"].pid  # the simulated pid
    assert seen["code"] == 0
    names = [n for (n,) in world.db.conn.execute("SELECT name FROM cfg_object WHERE type = 'DN'")]
    assert names == ["dn-1"]
    # Its claim was given back on SIGTERM, its lease is at epoch 1.
    assert world.db.conn.execute(
        "SELECT epoch FROM cfg_lease WHERE name = 'database'"
    ).fetchall() == [(1,)]


def test_a_second_copy_of_a_running_server_is_refused_with_one_line() -> None:
    world = _world()

    async def scenario(w: World) -> tuple[int | None, str]:
        await w.start_server("confserv")
        await _until(lambda: any(t[2] == events.ROLE_CHANGED.id for t in w.trace))
        copy = await w.spawn_command("copy", w.files.argv("confserv"))
        await copy.ended.wait()
        return copy.code, copy.err.getvalue()

    code, err = run_world(world, scenario)
    assert code == 2
    assert err.startswith("confserv: [confserv] ")
    assert err.count("\n") == 1


def test_a_killed_primary_leaves_its_claim_and_a_restart_knows_it_dead() -> None:
    world = _world()

    async def scenario(w: World) -> list[str]:
        first = await w.start_server("confserv")
        await _until(lambda: any(t[2] == events.ROLE_CHANGED.id for t in w.trace))
        first.kill()
        await first.ended.wait()
        assert first.how == "killed by SIGKILL"
        again = await w.start_server("confserv")
        started = trio.current_time()
        await _until(lambda: sum(t[2] == events.LEASE_TAKEN.id for t in w.trace) == 2)
        assert trio.current_time() - started < 1.0  # forced on proof of death, not after the ttl
        again.terminate()
        return [x for _, p, i, x in w.trace if i == events.HOLDER_DEAD.id]

    dead = run_world(world, scenario)
    assert len(dead) == 1
    assert world.crashes == []


@pytest.mark.parametrize(
    "fault", ["stall", "stall-long", "lost", "refuse", "hang", "hang-long", "pause", "kill"]
)
def test_the_simulated_store_faults(fault: str) -> None:
    _, template = installation()
    db = SimDatabase(template)
    gate = Gate()
    store = db.store("x", gate)

    async def main() -> tuple[str, float]:
        if fault == "stall":
            db.stall(2.0)
        elif fault == "stall-long":
            db.stall(60.0)
        elif fault == "hang-long":
            db.cut_off("x", 60.0, "hang")
        elif fault == "lost":
            db.lose_answers(1.0)
        elif fault in ("refuse", "hang"):
            db.cut_off("x", 1.0, fault)
        elif fault == "pause":
            gate.pause()
        elif fault == "kill":
            gate.kill()
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            if fault == "pause":
                nursery.start_soon(lambda: _later(0.7, gate.resume))
            try:
                lease = await store.read_lease()
                outcome = f"lease {lease.epoch if lease else None}"
            except UnavailableError as exc:
                outcome = f"unavailable: {exc}"
        return outcome, trio.current_time() - started

    outcome, took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    expected = {
        "stall": ("lease 0", 2.0),  # answered once the stall ends
        "stall-long": ("unavailable", 5.0),  # the response timeout
        "hang-long": ("unavailable", 5.0),
        "lost": ("lease 0", 0.0),  # a read's answer is never lost (only a commit's)
        "refuse": ("unavailable", 0.0),
        "hang": ("lease 0", 1.0),  # held until the cut ends, as TCP retransmits
        "pause": ("lease 0", 0.7),
        "kill": ("unavailable", 0.0),
    }[fault]
    assert outcome.startswith(expected[0]), outcome
    assert expected[1] <= took <= expected[1] + 0.01


async def _later(delay: float, action: Any) -> None:
    await trio.sleep(delay)
    action()
