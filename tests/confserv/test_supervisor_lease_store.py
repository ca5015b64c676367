"""The supervisor lease in the store (issue 14), on SQLite and on PostgreSQL alike.

Row ``supervisor`` of ``cfg_lease``: its own epoch, holder and expiry by the
database clock, taken only when expired, unheld or already ours; a renewal
after another took it is refused with SupervisorFencedError; servers never see
it. The rules on a simulated clock, as a state machine, are in
``test_supervisor_lease_machine.py``.
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from confserv.config.settings import DatabaseSettings
from confserv.store.base import Holder, PlanStore, Write
from confserv.store.engines import open_store
from confserv.store.instance import Instance
from confserv.store.leases import Lease, SupervisorFencedError, SupervisorLeaseHeldError
from confserv.store.plan import Plan, Query, Rows
from confserv.wire.errors import FencedError
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def supervisor(name: str, n: int = 1, host: str = "hostC") -> Holder:
    """A supervisor process on another host (never known dead from here)."""
    return Holder(name, Instance(id=f"{name}-{n}", host=host, pid=5000 + n, start=1, port=4998))


A, B = supervisor("scs-a"), supervisor("scs-b", 2, "hostD")
A_AGAIN = supervisor("scs-a", 3)  # the same name, another process
SERVER = Holder("confserv", Instance(id="cs-1", host="hostA", pid=77, start=1, port=2120))


@pytest.fixture
async def store(db_settings: DatabaseSettings) -> AsyncIterator[PlanStore]:
    """A database as ``cfgctl init`` made it before the supervisor lease existed."""
    async with open_store(db_settings, create=True) as s:
        assert isinstance(s, PlanStore)
        assert await s.create_schema()
        yield s


def _rows_plan(sql: str) -> Plan:
    rows: Rows = yield Query(sql)
    return rows


async def lease_rows(store: PlanStore) -> dict[str, tuple[int, str]]:
    """Every row of cfg_lease: name -> (epoch, holder)."""
    rows = await store._run(_rows_plan("SELECT name, epoch, holder FROM cfg_lease"), write=False)
    return {str(n): (int(e), str(h)) for n, e, h in rows}


async def test_the_first_take_makes_the_row_in_a_database_initialised_without_it(
    store: PlanStore,
) -> None:
    assert await lease_rows(store) == {"database": (0, "")}
    assert await store.read_supervisor_lease() is None
    lease = await store.acquire_supervisor_lease(A, 5, "hostC:4998")
    assert (lease.epoch, lease.holder, lease.address) == (1, "scs-a", "hostC:4998")
    assert lease.valid
    assert 4.9 < lease.remaining <= 5
    assert Instance.from_json(lease.instance) == A.instance
    assert await lease_rows(store) == {"database": (0, ""), "supervisor": (1, "scs-a")}
    again = await store.read_supervisor_lease()
    assert again is not None
    assert (again.epoch, again.holder_key, again.address) == (1, A.key, "hostC:4998")


async def test_supervisor_lease_rules(store: PlanStore) -> None:
    await store.acquire_supervisor_lease(A, 10, "hostC:4998")
    with pytest.raises(SupervisorLeaseHeldError, match=r"^the supervisor lease is held by 'scs-a'"):
        await store.acquire_supervisor_lease(B, 10, "hostD:4998")
    with pytest.raises(SupervisorLeaseHeldError, match=r"pid 5001 on host hostC.* at epoch 1") as e:
        await store.acquire_supervisor_lease(A_AGAIN, 10, "hostC:4998")  # same name, not ours
    assert (e.value.holder, e.value.epoch) == ("scs-a", 1)
    assert (await store.acquire_supervisor_lease(A, 10, "hostC:4998")).epoch == 2  # ours: again
    renewed = await store.renew_supervisor_lease(A, 2, 30)
    assert (renewed.epoch, renewed.holder) == (2, "scs-a")
    assert renewed.remaining > 25
    with pytest.raises(SupervisorFencedError, match="no longer held by this process at epoch 1"):
        await store.renew_supervisor_lease(A, 1, 30)  # its own older epoch
    with pytest.raises(SupervisorFencedError):
        await store.renew_supervisor_lease(A_AGAIN, 2, 30)  # same name, another process
    await store.release_supervisor_lease(A, 2)
    released = await store.read_supervisor_lease()
    assert released is not None
    assert (released.valid, released.holder, released.epoch) == (False, "", 2)
    taken = await store.acquire_supervisor_lease(B, 10, "hostD:4998")  # a standby need not wait
    assert (taken.epoch, taken.holder, taken.address) == (3, "scs-b", "hostD:4998")
    with pytest.raises(
        SupervisorFencedError, match=r"epoch 2: 'scs-b' \(pid 5002 on host hostD.*epoch 3"
    ):
        await store.renew_supervisor_lease(A, 2, 10)  # after the takeover
    await store.release_supervisor_lease(A, 2)  # a stale release changes nothing
    still = await store.read_supervisor_lease()
    assert still is not None
    assert (still.valid, still.holder, still.epoch) == (True, "scs-b", 3)


async def _until_expired(store: PlanStore) -> None:
    with trio.fail_after(10):
        while (lease := await store.read_supervisor_lease()) is not None and lease.valid:
            await trio.sleep(0.01)


async def test_the_lease_expires_by_the_database_clock_and_a_standby_takes_it(
    store: PlanStore,
) -> None:
    await store.acquire_supervisor_lease(A, 0.05, "hostC:4998")
    with pytest.raises(SupervisorLeaseHeldError):
        await store.acquire_supervisor_lease(B, 10, "hostD:4998")
    await _until_expired(store)
    expired = await store.read_supervisor_lease()
    assert expired is not None
    assert expired.holder == "scs-a"
    assert expired.remaining <= 0
    taken = await store.acquire_supervisor_lease(B, 10, "hostD:4998")
    assert (taken.epoch, taken.holder) == (2, "scs-b")
    with pytest.raises(SupervisorFencedError, match="'scs-b'"):
        await store.renew_supervisor_lease(A, 1, 10)


async def test_an_expired_lease_nobody_took_is_renewed_at_the_same_epoch(
    store: PlanStore,
) -> None:
    """No other supervisor could have acted in between: a take would have raised the
    epoch, and then the renewal is refused."""
    await store.acquire_supervisor_lease(A, 0.05, "hostC:4998")
    await _until_expired(store)
    renewed = await store.renew_supervisor_lease(A, 1, 10)
    assert (renewed.epoch, renewed.valid) == (1, True)


async def test_servers_never_see_the_supervisor_lease(store: PlanStore) -> None:
    for _ in range(3):
        await store.acquire_supervisor_lease(A, 10, "hostC:4998")  # supervisor epoch 3
    database = await store.read_lease()
    assert database is not None
    assert (database.epoch, database.holder, database.valid) == (0, "", False)
    # Writes are fenced by the database's epoch only: 0 now, never the supervisor's 3.
    change = await store.commit(0, 0, Write("add", "Host", None, host("a")))
    with pytest.raises(FencedError, match="epoch 3 is not the lease's epoch 0"):
        await store.commit(3, change.serial, Write("add", "Host", None, host("b")))
    assert (await store.acquire_lease(SERVER, 10, force=False)).epoch == 1
    await store.commit(1, change.serial, Write("add", "Host", None, host("b")))
    # A supervisor named like a claim row, and an Application named 'supervisor'.
    await store.claim(Holder("supervisor", SERVER.instance), 10)
    await store.raise_counters(2, {}, 9)
    assert not await store.create_schema()  # cfgctl init again: complete, untouched
    assert await lease_rows(store) == {
        "database": (9, "confserv"),
        "supervisor": (3, "scs-a"),
        "app:supervisor": (0, "supervisor"),
    }
    # And the server's take does not move the supervisor epoch, nor the reverse.
    assert (await store.acquire_lease(SERVER, 10, force=True)).epoch == 10
    assert (await store.acquire_supervisor_lease(A, 10, "hostC:4998")).epoch == 4
    assert (await store.renew_lease(SERVER, 10, 10)).epoch == 10


def host(name: str) -> dict[str, object]:
    return {"type": "Host", "name": name, "state": "enabled", "options": {}}


@pytest.fixture
async def rival(db_settings: DatabaseSettings, store: PlanStore) -> AsyncIterator[PlanStore]:
    """A second supervisor's store on the same database: its own SQLite connection;
    on PostgreSQL the same pool, whose connections run transactions at once."""
    if db_settings.engine != "sqlite":
        yield store
        return
    async with open_store(db_settings) as s:
        assert isinstance(s, PlanStore)
        yield s


async def _take(
    results: dict[str, Lease | SupervisorLeaseHeldError], name: str, s: PlanStore, who: Holder
) -> None:
    try:
        results[name] = await s.acquire_supervisor_lease(who, 30, f"{name}:4998")
    except SupervisorLeaseHeldError as exc:
        results[name] = exc


async def test_two_concurrent_takes_never_both_succeed(store: PlanStore, rival: PlanStore) -> None:
    """Both supervisors try at the same moment, ten times (the first time the row does
    not exist yet, so both also try to make it): one wins, the other is told who won."""
    for round_ in range(1, 11):
        results: dict[str, Lease | SupervisorLeaseHeldError] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_take, results, "a", store, A)
            nursery.start_soon(_take, results, "b", rival, B)
        won = [n for n, r in results.items() if isinstance(r, Lease)]
        assert len(won) == 1, results
        (winner,) = won
        lease, refusal = results[winner], results["b" if winner == "a" else "a"]
        assert isinstance(lease, Lease)
        assert isinstance(refusal, SupervisorLeaseHeldError)
        assert lease.epoch == round_ == refusal.epoch
        assert refusal.holder == f"scs-{winner}"
        await store.release_supervisor_lease(A if winner == "a" else B, round_)


CONTENDER = """
import json, random, sys, time
import trio
from confserv.store.base import Holder
from confserv.store.instance import Instance
from confserv.store.leases import SupervisorLeaseHeldError, acquire_supervisor_lease_plan
from confserv.store.sqlite import SqliteStore

path, name, until, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
store = trio.run(SqliteStore.open, path)
me = Holder(name, Instance.this_process(port=4998))
rng = random.Random(name)
while time.time() < until:
    try:
        lease = store.run_sync(acquire_supervisor_lease_plan(me, ttl, name))
    except SupervisorLeaseHeldError:
        time.sleep(rng.uniform(0, ttl / 4))  # a standby tries again soon
    else:
        print(json.dumps([lease.epoch, name, lease.now, lease.expires_at]), flush=True)
        time.sleep(rng.uniform(0, 3 * ttl))  # takes it again while ours, or lets it expire
"""


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
async def test_takes_from_two_processes_never_overlap(
    store: PlanStore, db_settings: DatabaseSettings
) -> None:
    """Two supervisor processes try to take the lease again and again for a second
    (ttl 20 ms; a holder pauses up to three ttls, so it sometimes takes its own lease
    again and sometimes lets it expire): every take raises the epoch by exactly one,
    and a take by the other process comes only once the last one has expired by the
    database clock."""
    ttl = 0.02
    until = time.time() + 1.0 + 1.5  # both are up before then (interpreter start-up)
    takes: list[tuple[int, str, float, float]] = []

    async def contend(name: str) -> None:
        argv = [sys.executable, "-c", CONTENDER, db_settings.dbname, name, str(until), str(ttl)]
        done = await trio.run_process(argv, capture_stdout=True, cwd=ROOT)
        for line in done.stdout.decode().splitlines():
            epoch, who, now, expires = json.loads(line)
            takes.append((int(epoch), str(who), float(now), float(expires)))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for name in ("scs-a", "scs-b"):
                nursery.start_soon(contend, name)
    takes.sort()
    assert [t[0] for t in takes] == list(range(1, len(takes) + 1))  # each take: +1, once
    assert {t[1] for t in takes} == {"scs-a", "scs-b"}  # they did contend
    for (_, before, _, expires), (epoch, who, now, _) in itertools.pairwise(takes):
        if who != before:
            assert now >= expires, f"epoch {epoch}: {who} took it {expires - now:.4f} s early"


@pytest.mark.parametrize("db_settings", ["postgre"], indirect=True)
async def test_a_first_take_waits_for_another_first_take_in_flight(
    store: PlanStore, db_settings: DatabaseSettings, request: pytest.FixtureRequest
) -> None:
    """Regression (found writing this): the first take of a missing row on PostgreSQL.
    Another supervisor's first take has made the row and not committed yet; locking a
    row that is not there waits for nothing, so a take that only then inserted failed
    on the duplicate key (ConstraintError) instead of being told who holds the lease.
    The row is made before it is locked: the take waits for the other, then sees it."""
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    other = (
        "BEGIN;\n"
        "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) VALUES "
        f"('supervisor', 1, 'scs-a', '{A.instance.to_json()}', "
        "extract(epoch from clock_timestamp()) + 30, 'hostC:4998');\n"
        "SELECT pg_sleep(1.5);\n"  # the other's transaction, still open
        "COMMIT;\n"
    )
    in_flight = (
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query LIKE '%pg_sleep(1.5)%' AND pid <> pg_backend_pid()"
    )
    commit = functools.partial(cluster.psql, other, dbname=db_settings.dbname)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, commit)
        with trio.fail_after(20):
            while (await trio.to_thread.run_sync(cluster.psql, in_flight)).strip() == "0":
                await trio.sleep(0.02)
        with pytest.raises(SupervisorLeaseHeldError, match="held by 'scs-a'") as held:
            await store.acquire_supervisor_lease(B, 10, "hostD:4998")
    assert (held.value.epoch, held.value.holder) == (1, "scs-a")
    assert await lease_rows(store) == {"database": (0, ""), "supervisor": (1, "scs-a")}
