"""Role and lease logic under crashes, pauses, database cut-offs and time (hypothesis, MockClock).

Two real server processes (the real ``confserv`` command line: its PairDriver,
RoleMachine, ConfigService write path, management port) run in the
simulation of :mod:`tests.sim` on a simulated Configuration Database, with no
supervisor: hypothesis chooses what happens to them (time passing, a crash
and restart, a pause, a cut-off from the database, an operator's promote or
demote, a forced promotion when the other is dead, writes). The invariants
are those of ``docs/design.md``:

1. at most one server commits in a given epoch, and epochs only increase
   (every commit is at the lease's epoch of its moment, acknowledged writes
   name one server per epoch);
2. no write acknowledged is lost (every one is in the database afterwards);
3. no promotion while the holder's lease is valid, except by force on proof
   of death (the database sees every take);
4. a primary that says it accepts writes holds the unexpired lease at its epoch.
"""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import event, given, settings
from hypothesis import strategies as st

from addp import LinkEnded
from confserv.client.session import open_client, open_management
from confserv.wire.errors import ConfServError
from tests.helpers.examples import examples

from ..sim.process import SimProcess
from ..sim.system import (
    CLIENT_PORT,
    MANAGEMENT_PORT,
    PAIR,
    PASSWORD,
    SECRET,
    USER,
    host_of,
    installation,
)
from ..sim.world import World, run_world

#: What can happen, as often as it is drawn (waits and crashes often, so that leases run
#: out and failovers happen in most examples).
OPS = (
    *("wait", "wait", "wait", "crash", "crash", "restart", "restart", "promote", "promote"),
    *("force", "force", "pause", "resume", "cut", "heal", "demote", "write", "write", "write"),
    *("crash the holder", "crash the holder", "pause the holder", "cut the holder"),
)
STEP = st.tuples(st.sampled_from(OPS), st.sampled_from(PAIR), st.floats(0.0, 2.5))

Failures = (OSError, ConfServError, LinkEnded, trio.TooSlowError)


class Pair:
    """The two servers and what was done to them (one hypothesis example)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.acked: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.forced_on_proof = 0

    def alive(self, name: str) -> SimProcess | None:
        proc = self.world.alive(name)
        return None if proc is None or proc.killed else proc

    async def ask(self, name: str, call: Any) -> Any:
        """A management call from an operator's process; None when it failed."""
        result: list[Any] = []

        async def body(_proc: SimProcess) -> int:
            try:
                with trio.fail_after(3):
                    async with open_management(host_of(name), MANAGEMENT_PORT, SECRET) as m:
                        result.append(await call(m))
            except Failures:
                pass
            return 0

        proc = await self.world.spawn("operator", body)
        await proc.ended.wait()
        return result[0] if result else None

    async def write(self, name: str) -> None:
        key = f"dn{len(self.acked)}-{trio.current_time():.3f}"

        async def body(_proc: SimProcess) -> int:
            try:
                with trio.fail_after(3):
                    async with open_client(
                        [(host_of(name), CLIENT_PORT)], app="writer", user=USER, password=PASSWORD
                    ) as c:
                        answer = await c.create("DN", {"name": key})
                        server = c.address[0].removesuffix(".sim")  # a backup names the primary
                self.acked.append({**answer, "name": key, "server": server})
            except Failures:
                pass
            return 0

        proc = await self.world.spawn("writer", body)
        await proc.ended.wait()

    async def step(self, what: str, arg: str, seconds: float) -> None:
        if what.endswith(" the holder"):  # aimed at the lease's holder, whoever it is
            lease = self.world.db.lease()
            what, arg = what.removesuffix(" the holder"), lease.holder if lease else ""
            if arg not in PAIR:
                return
        world, proc = self.world, self.alive(arg)
        if what == "wait":
            await trio.sleep(seconds)
        elif what == "crash" and proc is not None:
            proc.kill()
            await proc.ended.wait()
        elif what == "restart" and self.world.alive(arg) is None:
            await world.start_server(arg)
        elif what == "pause" and proc is not None:
            proc.pause()
        elif what == "resume" and proc is not None:
            proc.resume()
        elif what == "cut":
            world.db.cut_off(arg, 3600.0, "refuse")
        elif what == "heal":
            world.db.cuts.pop(arg, None)
        elif what in ("promote", "force") and proc is not None and not proc.gate.paused:
            other = PAIR[1] if arg == PAIR[0] else PAIR[0]
            if what == "force" and self.alive(other) is not None:
                return  # a forced promotion only on proof of death
            self.forced_on_proof += what == "force"
            await self.ask(arg, lambda m: m.switch_to_primary(force=what == "force"))
        elif what == "demote" and proc is not None and not proc.gate.paused:
            await self.ask(arg, lambda m: m.switch_to_backup())
        elif what == "write" and proc is not None and not proc.gate.paused:
            await self.write(arg)
        await self.check_writable_primaries()

    async def check_writable_primaries(self) -> None:
        """Invariant 4, from each running server's own status."""
        for name in PAIR:
            proc = self.alive(name)
            if proc is None or proc.gate.paused or name in self.world.db.cuts:
                continue
            status = await self.ask(name, lambda m: m.status())
            if status is None or status["role"] != "primary" or not status["writable"]:
                continue
            lease = self.world.db.lease()
            now = trio.current_time()
            if lease is None or lease.epoch != status["epoch"] or lease.expires_at <= now:
                self.problems.append(
                    f"{name} accepts writes at epoch {status['epoch']} at {now:.3f} s, but the "
                    f"lease is {lease}"
                )


@settings(max_examples=examples(100), deadline=None)
@given(steps=st.lists(STEP, min_size=6, max_size=24))
def test_the_pair_keeps_the_invariants(steps: list[tuple[str, str, float]]) -> None:
    files, template = installation()
    world = World(7, files, template)
    pair = Pair(world)

    async def scenario(w: World) -> None:
        for name in PAIR:
            await w.start_server(name)
        await trio.sleep(0.5)
        for what, arg, seconds in steps:
            await pair.step(what, arg, seconds)
        await trio.sleep(0.5)

    run_world(world, scenario)
    # 1 and 3: what the database saw (every commit at the lease's epoch; takes).
    assert world.db.violations == []
    assert world.crashes == []
    writers: dict[int, str] = {}
    for a in sorted(pair.acked, key=lambda a: a["serial"]):
        assert writers.setdefault(a["epoch"], a["server"]) == a["server"], "two writers"
    epochs = [a["epoch"] for a in sorted(pair.acked, key=lambda a: a["serial"])]
    assert epochs == sorted(epochs), "a commit from an older epoch after a newer one"
    # 2: nothing acknowledged is lost.
    stored = {n for (n,) in world.db.query("SELECT name FROM cfg_object WHERE type = 'DN'")}
    assert {a["name"] for a in pair.acked} <= stored
    # 4.
    assert pair.problems == []
    lease = world.db.query("SELECT epoch FROM cfg_lease WHERE name = 'database'")[0][0]
    event(f"epochs reached: {min(int(lease), 4)}{'+' if lease >= 4 else ''}")
    event(f"forced on proof of death: {'yes' if pair.forced_on_proof else 'no'}")
    event(f"acknowledged writes: {'some' if pair.acked else 'none'}")
