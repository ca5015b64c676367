"""The supervisor lease's trio glue (scs/supervisor_lease.py) on the simulated database, MockClock.

Two (or three) :class:`SupervisorLease` tasks share one simulated Configuration
Database (the store's real plans on SQLite, ``{now}`` the trio clock, faults
injected per process: tests/sim/store.py). A sampler looks every 10 ms of
simulated time and holds the invariants of docs/design.md ("The supervisor is
fenced too"): at most one supervisor acts at any instant, and the one that acts
is the database's valid holder at its own epoch. Then each way of losing or
giving up the lease, with the bound on the take-over.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from confserv.config.settings import DatabaseSettings
from confserv.logs.eventlog import EventLog
from confserv.store.engines import use_store_opener
from confserv.store.leases import SupervisorNameTakenError, read_supervisor_lease_plan
from confserv.store.schema import schema_plan
from confserv.store.tables import ddl
from confserv.wire.errors import first_in_group
from scs.redundancy import RedundancySpec
from scs.supervisor_lease import SupervisorLease

from ..sim.gate import Gate
from ..sim.store import SimDatabase

TTL, RENEW, RETRY = 2.0, 0.5, 0.25
DB = DatabaseSettings(section="scsdb", engine="sqlite", dbname=":memory:", response_timeout=5.0)
SPEC = RedundancySpec(DB, TTL, RENEW, RETRY)


class World:
    """One simulated database, the supervisors on it, and the invariant sampler."""

    def __init__(self) -> None:
        self.db = SimDatabase()
        self.db.run(schema_plan(ddl("sqlite")))
        self.out = io.StringIO()
        self.log = EventLog("scs", self.out, verbose="all")
        self.leases: dict[str, SupervisorLease] = {}
        self.violations: list[str] = []
        self.active_times: dict[str, float] = {}  # when each was first seen acting

    def lease(self, name: str, process: str | None = None) -> SupervisorLease:
        lease = SupervisorLease(SPEC, name, self.log)
        self.leases[process or name] = lease
        return lease

    async def run(self, process: str, lease: SupervisorLease, **kw: Any) -> None:
        with use_store_opener(self.db.opener(process, Gate())):
            await lease.run(**kw)

    def sample(self) -> None:
        now = trio.current_time()
        acting = [p for p, lease in self.leases.items() if lease.acting()]
        if len(acting) > 1:
            self.violations.append(f"{now:.3f}: {acting} act at once")
        row = self.db.run(read_supervisor_lease_plan())
        for p in acting:
            self.active_times.setdefault(p, now)
            lease = self.leases[p]
            ok = (
                row is not None
                and row.holder_key == lease.holder.key
                and row.epoch == lease.election.epoch
                and row.remaining > 0
            )
            if not ok:
                self.violations.append(f"{now:.3f}: {p} acts but the database says {row}")

    async def sampler(self) -> None:
        while True:
            self.sample()
            await trio.sleep(0.01)

    def logged(self, event: int) -> list[str]:
        return [line for line in self.out.getvalue().splitlines() if f" {event:05d} " in line]


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Wait (simulated time) until ``check()``; when it became true."""
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.005)
    return trio.current_time()


async def within(world: World, body: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(world.sampler)
        await body(nursery)
        nursery.cancel_scope.cancel()
    assert world.violations == []


async def test_one_of_two_acts_and_the_other_waits(autojump_clock: trio.testing.MockClock) -> None:
    w = World()
    a, b = w.lease("scs-a"), w.lease("scs-b")

    async def body(n: trio.Nursery) -> None:
        await n.start(w.run, "scs-a", a)
        await until(a.acting, 1.0)
        await n.start(w.run, "scs-b", b)
        await trio.sleep(30)  # many renewals: b never acts
        assert a.acting()
        assert not b.acting()
        assert b.describe()["active"]["name"] == "scs-a"
        assert sorted(s["name"] for s in a.describe()["supervisors"]) == ["scs-a", "scs-b"]

    await within(w, body)
    assert a.election.epoch == 1
    assert len(w.logged(40701)) == 1
    assert len(w.logged(40702)) == 1


async def test_cut_off_from_the_database_stops_acting_before_the_lease_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for mode in ("refuse", "hang"):
        w = World()
        a, b = w.lease("scs-a"), w.lease("scs-b")

        async def body(
            n: trio.Nursery, w: World = w, a: Any = a, b: Any = b, mode: str = mode
        ) -> None:
            await n.start(w.run, "scs-a", a)
            await until(a.acting, 1.0)
            await n.start(w.run, "scs-b", b)
            await trio.sleep(3)
            cut = trio.current_time()
            w.db.cut_off("scs-a", 20, mode)
            stopped = await until(lambda: not a.acting(), TTL)
            took = await until(b.acting, TTL * 3)
            assert stopped - cut < TTL  # before the lease, as seen by the database, ends
            # the lease's last renewal, its ttl, a standby's look and its take
            assert took - cut <= TTL + RETRY + 0.1, f"{mode}: took over {took - cut:.3f} s later"
            w.db.heal()
            await trio.sleep(10)
            assert b.acting()
            assert not a.acting()

        await within(w, body)
        assert b.election.epoch == 2
        assert w.logged(40703)
        assert w.logged(40704)


async def test_a_planned_stop_hands_over_within_the_margin(
    autojump_clock: trio.testing.MockClock,
) -> None:
    w = World()
    a, b = w.lease("scs-a"), w.lease("scs-b")

    async def body(n: trio.Nursery) -> None:
        await n.start(w.run, "scs-a", a)
        await until(a.acting, 1.0)
        await n.start(w.run, "scs-b", b)
        await trio.sleep(2)
        stop = trio.current_time()
        await a.resign()
        assert not a.acting()
        took = await until(b.acting, TTL)
        # released a margin after it stopped acting; the standby's next look takes it
        assert took - stop <= a.election.margin + RETRY + 0.05

    await within(w, body)
    assert len(w.logged(40706)) == 1


async def test_a_newer_epoch_seen_elsewhere_stops_acting_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    w = World()
    a = w.lease("scs-a")

    async def body(n: trio.Nursery) -> None:
        await n.start(w.run, "scs-a", a)
        await until(a.acting, 1.0)
        epoch = a.election.epoch
        a.superseded(epoch)  # not newer: nothing happens
        await trio.sleep(0.1)
        assert a.acting()
        a.superseded(epoch + 1)
        await until(lambda: not a.acting(), 0.01)
        # it takes the lease again once its last term's commands cannot be in flight
        await until(a.acting, TTL * 2)
        assert a.election.epoch == epoch + 1

    await within(w, body)
    assert any("newer than" in line for line in w.logged(40703))


async def test_a_second_process_of_one_name_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    w = World()
    a, twin = w.lease("scs-a", "first"), w.lease("scs-a", "second")

    async def both() -> None:
        async with trio.open_nursery() as n:
            await n.start(w.run, "first", a)
            await until(a.acting, 1.0)
            await n.start(w.run, "second", twin)
            await trio.sleep(5)

    with pytest.raises(BaseException) as caught:  # noqa: PT011 (a group from the nursery)
        await both()
    assert first_in_group(caught.value, SupervisorNameTakenError), caught.value
    assert "give this one another --name" in str(
        first_in_group(caught.value, SupervisorNameTakenError)
    )


def test_the_ask_timeout_is_well_inside_the_lease() -> None:
    lease = SupervisorLease(SPEC, "x", EventLog("scs", io.StringIO()))
    margin = lease.election.margin
    # a renewal due at RENEW that hangs times out, and its retry is sent, in time
    assert RENEW + 2 * lease.ask_timeout <= TTL - margin
    assert math.isclose(lease.ask_timeout, (TTL - margin - RENEW) / 2)


class FirstRenewalHangs:
    """A store whose first renewal never answers (a pooled connection to a database
    host that died: the next call goes on another connection and is answered)."""

    def __init__(self, store: Any) -> None:
        self.store, self.hung = store, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def renew_supervisor_lease(self, *args: Any) -> Any:
        if not self.hung:
            self.hung = True
            await trio.sleep_forever()
        return await self.store.renew_supervisor_lease(*args)


async def test_one_hung_renewal_is_retried_in_time_and_the_active_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The defaults (ttl 6, renew 2): a renewal that hangs is timed out after
    (ttl - margin - renew) / 2 and retried before the active must stop. With a
    bound of ttl / 2 the first hung renewal timed out just as acting ended (the
    multi-host bed's finding): a stale connection cost a take-over."""
    w = World()
    spec = RedundancySpec(DB, 6.0, 2.0, 1.0)
    a = SupervisorLease(spec, "scs-a", w.log)
    w.leases["scs-a"] = a
    sim = w.db.opener("scs-a", Gate())

    @contextlib.asynccontextmanager
    async def opener(db: Any, create: bool) -> Any:
        async with sim(db, create) as store:
            yield FirstRenewalHangs(store)

    async def run(task_status: Any) -> None:
        with use_store_opener(opener):
            await a.run(task_status=task_status)

    async def body(n: trio.Nursery) -> None:
        await n.start(run)
        for _ in range(150):  # 15 s: the hung renewal, its retry, and more
            assert a.acting() or trio.current_time() < 0.1
            await trio.sleep(0.1)

    await within(w, body)
    assert w.logged(40703) == []
    assert w.logged(40704)  # the hung one was told
    assert a.election.epoch == 1
