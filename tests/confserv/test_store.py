"""The store contract, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from confserv.config.settings import DatabaseSettings
from confserv.store.base import ConfigStore, Holder, Write
from confserv.store.engines import open_store
from confserv.store.instance import Instance
from confserv.wire.errors import (
    ClaimLostError,
    ConstraintError,
    DatabaseIdentityError,
    FencedError,
    InstanceClaimedError,
    LeaseHeldError,
    NotFoundError,
    StaleMemoryError,
)

pytestmark = pytest.mark.integration


def holder(app: str, n: int = 1, host: str = "elsewhere", pid: int = 4242) -> Holder:
    """A holder on another host (never known dead from here)."""
    return Holder(app, Instance(id=f"{app}-{n}", host=host, pid=pid + n, start=1, port=2120))


ONE, TWO = holder("one"), holder("two")


@pytest.fixture
async def store(db_settings: DatabaseSettings) -> AsyncIterator[ConfigStore]:
    async with open_store(db_settings, create=True) as s:
        assert await s.create_schema()
        assert not await s.create_schema()  # idempotent
        yield s


class Serials:
    """Commits with the last serial the caller's memory is at, as the service does."""

    def __init__(self, store: ConfigStore) -> None:
        self.store, self.serial = store, 0

    async def commit(self, epoch: int, write: Write) -> object:
        change = await self.store.commit(epoch, self.serial, write)
        self.serial = change.serial
        return change


def host(name: str) -> dict[str, object]:
    return {"type": "Host", "name": name, "state": "enabled", "options": {}}


async def test_writes_get_serials_and_dbids_in_order(store: ConfigStore) -> None:
    c = Serials(store)
    a = await c.commit(0, Write("add", "Host", None, host("a")))
    b = await c.commit(0, Write("add", "Host", None, host("b")))
    assert (a.serial, a.dbid, b.serial, b.dbid) == (1, 1, 2, 2)
    changed = {**host("b2"), "dbid": 2}
    ch = await c.commit(0, Write("change", "Host", 2, changed, {"delta": {"name": "b2"}}))
    assert ch.serial == 3  # type: ignore[attr-defined]
    d = await c.commit(0, Write("delete", "Host", 1, None, {"name": "a"}))
    assert d.serial == 4  # type: ignore[attr-defined]
    snap = await store.load()
    assert snap.last_serial == 4
    assert [o["name"] for o in snap.objects] == ["b2"]


async def test_dbids_are_never_reused(store: ConfigStore) -> None:
    c = Serials(store)
    await c.commit(0, Write("add", "Host", None, host("a")))
    b = await c.commit(0, Write("add", "Host", None, host("b")))
    await c.commit(0, Write("delete", "Host", b.dbid, None, {"name": "b"}))
    third = await c.commit(0, Write("add", "Host", None, host("c")))
    assert third.dbid == b.dbid + 1  # type: ignore[attr-defined]


async def test_a_write_with_a_stale_epoch_is_fenced_and_leaves_nothing(
    store: ConfigStore,
) -> None:
    c = Serials(store)
    lease = await store.acquire_lease(ONE, 10, force=False)
    assert lease.epoch == 1
    await c.commit(1, Write("add", "Host", None, host("a")))
    taken = await store.acquire_lease(TWO, 10, force=True)
    assert taken.epoch == 2
    with pytest.raises(FencedError, match="epoch 1 is not the lease's epoch 2"):
        await c.commit(1, Write("add", "Host", None, host("b")))
    snap = await store.load()
    assert [o["name"] for o in snap.objects] == ["a"]
    assert snap.last_serial == 1


async def test_a_duplicate_name_is_a_constraint_error(store: ConfigStore) -> None:
    c = Serials(store)
    await c.commit(0, Write("add", "Host", None, host("a")))
    with pytest.raises(ConstraintError):
        await c.commit(0, Write("add", "Host", None, host("a")))
    assert (await store.load()).last_serial == 1


async def test_lease_rules(store: ConfigStore) -> None:
    first = await store.acquire_lease(ONE, 10, force=False)
    assert first.valid
    assert first.holder == "one"
    with pytest.raises(LeaseHeldError, match=r"held by 'one' \(pid 4243 on host elsewhere") as held:
        await store.acquire_lease(TWO, 10, force=False)
    assert held.value.holder == "one"
    again = await store.acquire_lease(ONE, 10, force=False)
    assert again.epoch == 2  # re-taking our own lease still starts a new epoch
    renewed = await store.renew_lease(ONE, 2, 20)
    assert renewed.remaining > 15
    with pytest.raises(FencedError):
        await store.renew_lease(ONE, 1, 20)
    await store.release_lease(ONE, 2)
    released = await store.read_lease()
    assert released is not None
    assert not released.valid
    second = await store.acquire_lease(TWO, 10, force=False)
    assert second.epoch == 3


async def test_an_expired_lease_can_be_taken(store: ConfigStore) -> None:
    await store.acquire_lease(ONE, 0.01, force=False)
    # The database clock moves on; wait for expiry by reading the lease.
    import trio

    with trio.fail_after(5):
        while (lease := await store.read_lease()) is not None and lease.valid:
            await trio.sleep(0.01)
    taken = await store.acquire_lease(TWO, 10, force=False)
    assert (taken.holder, taken.epoch) == ("two", 2)


async def test_history_since_and_its_limits(store: ConfigStore) -> None:
    c = Serials(store)
    for i in range(5):
        await c.commit(0, Write("add", "Host", None, host(f"h{i}")))
    changes = await store.history_since(2, limit=100)
    assert changes is not None
    assert [c.serial for c in changes] == [3, 4, 5]
    assert changes[0].data["name"] == "h2"
    assert await store.history_since(5, limit=100) == []
    assert await store.history_since(0, limit=3) is None  # more missed than max-records
    assert await store.trim_history(-1.0) == 4  # everything is "older" than the future
    assert await store.history_since(3, limit=100) is None  # no longer reaches back
    kept = await store.history_since(4, limit=100)
    assert kept is not None
    assert [c.serial for c in kept] == [5]


# only on sqlite (not set up on postgre to be skipped): SQLite makes the wait visible,
# a writer holds the whole database
@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
async def test_a_complete_schema_is_not_touched_while_another_writer_holds_the_database(
    store: ConfigStore, db_settings: DatabaseSettings
) -> None:
    """Found by make chaos: a server starting beside a busy primary ran its DDL
    (CREATE ... IF NOT EXISTS still locks the tables), deadlocked with the writes on
    PostgreSQL, crashed, and crash-looped. A complete schema now gets no DDL: start-up
    only reads, and does not wait for a writer holding the database."""
    import sqlite3

    holder = sqlite3.connect(db_settings.dbname, isolation_level=None, timeout=1)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, left open
    try:
        with trio.fail_after(3):  # DDL would wait the 10 s busy timeout, then fail
            await store.identity()  # what a server does at start-up: reads only
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_commit_from_memory_behind_the_database_is_refused(store: ConfigStore) -> None:
    """Two servers' memories at different serials: the one behind cannot commit (it
    catches up first), so stale memory never overwrites a newer row."""
    await store.commit(0, 0, Write("add", "Host", None, host("a")))
    with pytest.raises(StaleMemoryError, match=r"database is at serial 1, .* memory at 0") as err:
        await store.commit(0, 0, Write("add", "Host", None, host("b")))
    assert err.value.database_serial == 1
    assert (await store.load()).last_serial == 1


async def test_an_update_is_a_delta_applied_to_the_stored_row(store: ConfigStore) -> None:
    a = await store.commit(0, 0, Write("add", "Host", None, host("a")))
    # The writer's idea of the whole object is stale (ip_address missing): only the
    # delta reaches the database, the other field stays as stored.
    await store.commit(
        0,
        1,
        Write(
            "change",
            "Host",
            a.dbid,
            {**host("a"), "dbid": a.dbid},
            {"delta": {"ip_address": "10.0.0.1"}},
        ),
    )
    stale_obj = {**host("a"), "dbid": a.dbid, "os_type": "windows"}
    await store.commit(
        0, 2, Write("change", "Host", a.dbid, stale_obj, {"delta": {"os_type": "windows"}})
    )
    [stored] = (await store.load()).objects
    assert (stored["ip_address"], stored["os_type"]) == ("10.0.0.1", "windows")
    with pytest.raises(NotFoundError):
        await store.commit(0, 3, Write("change", "Host", 99, None, {"delta": {"name": "x"}}))
    with pytest.raises(NotFoundError):
        await store.commit(0, 3, Write("delete", "Host", 99, None, {"name": "x"}))
    assert (await store.load()).last_serial == 3


async def test_one_lease_whatever_the_holders_call_themselves(store: ConfigStore) -> None:
    """The lease belongs to the database: a holder of any name finds it held."""
    await store.acquire_lease(ONE, 10, force=False)
    for other in (TWO, holder("a third master"), holder("one", n=2)):
        with pytest.raises(LeaseHeldError):
            await store.acquire_lease(other, 10, force=False)
    lease = await store.read_lease()
    assert lease is not None
    assert (lease.holder, lease.epoch, lease.holder_key) == ("one", 1, "one#one-1")


async def test_a_second_process_of_one_application_is_refused_its_claim(
    store: ConfigStore,
) -> None:
    await store.claim(ONE, 10)
    await store.claim(ONE, 10)  # the same process again: fine
    with pytest.raises(
        InstanceClaimedError, match=r"'one' already runs as pid 4243 on host elsewhere"
    ):
        await store.claim(holder("one", n=2), 10)
    await store.claim(TWO, 10)  # another Application has its own claim
    await store.renew_claim(ONE, 10)
    await store.release_claim(ONE)
    second = holder("one", n=2)
    await store.claim(second, 10)  # released: the next process may run
    with pytest.raises(ClaimLostError, match="claimed by pid 4244 on host elsewhere"):
        await store.renew_claim(ONE, 10)


async def test_a_claim_of_a_dead_process_on_this_host_is_taken_over(store: ConfigStore) -> None:
    import socket

    dead = Holder("one", Instance(id="dead", host=socket.gethostname(), pid=2**22 + 7, start=1))
    await store.claim(dead, 10)
    await store.claim(holder("one", n=2), 10)  # no wait for the dead one's claim to expire
    with pytest.raises(ClaimLostError):
        await store.renew_claim(dead, 10)


async def test_raise_counters_never_lowers_and_never_reissues(store: ConfigStore) -> None:
    c = Serials(store)
    await c.commit(0, Write("add", "Host", None, host("a")))
    await store.raise_counters(10, {"Host": 5}, 3)
    await store.raise_counters(2, {"Host": 1}, 1)  # lower: nothing changes
    ident = await store.identity()
    assert (ident.last_serial, ident.dbids["Host"]) == (10, 5)
    lease = await store.read_lease()
    assert lease is not None
    assert lease.epoch == 3
    b = await store.commit(3, 10, Write("add", "Host", None, host("b")))
    assert (b.serial, b.dbid) == (11, 6)
    assert await store.history_since(1, limit=100) is None  # the gap: clients reload


async def test_identity_refuses_what_is_not_a_configuration_database(
    db_settings: DatabaseSettings,
) -> None:
    async with open_store(db_settings, create=True) as s:
        with pytest.raises(DatabaseIdentityError, match="is empty: run 'cfgctl init'"):
            await s.identity()
        await s._run(iter_plan("CREATE TABLE payroll (id INTEGER)"))  # type: ignore[attr-defined]
        with pytest.raises(DatabaseIdentityError, match=r"not a Configuration Database .*payroll"):
            await s.identity()


async def test_a_missing_sqlite_file_is_not_created_by_a_server(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "gone.sqlite"
    settings = DatabaseSettings(section="db", engine="sqlite", dbname=str(path))
    with pytest.raises(
        DatabaseIdentityError, match=r"gone\.sqlite does not exist: run 'cfgctl init'"
    ):
        async with open_store(settings):
            pass
    assert not path.exists()


async def test_cfgctl_init_upgrades_a_version_1_database(db_settings: DatabaseSettings) -> None:
    """Schema 1 had one lease row per pair name: the upgrade keeps the highest epoch
    as the database's one lease, so epochs only increase."""
    v1 = [
        "CREATE TABLE cfg_object (type TEXT, dbid INTEGER, name TEXT NOT NULL, "
        "data TEXT NOT NULL, PRIMARY KEY (type, dbid))",
        "CREATE TABLE cfg_counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "CREATE TABLE cfg_history (serial BIGINT PRIMARY KEY, epoch BIGINT NOT NULL, "
        "op TEXT NOT NULL, type TEXT NOT NULL, dbid INTEGER NOT NULL, change TEXT NOT NULL, "
        "time FLOAT NOT NULL)",
        "CREATE TABLE cfg_lease (pair TEXT PRIMARY KEY, epoch BIGINT NOT NULL, "
        "holder TEXT NOT NULL, expires_at FLOAT NOT NULL, address TEXT NOT NULL DEFAULT '')",
        "INSERT INTO cfg_counter VALUES ('schema', 1), ('serial', 0), ('dbid:Host', 0)",
        "INSERT INTO cfg_lease VALUES ('confserv', 7, '', 0, ''), ('Backup CS', 3, '', 0, '')",
    ]
    async with open_store(db_settings, create=True) as s:
        await s._run(iter_plan(*v1))  # type: ignore[attr-defined]
        with pytest.raises(DatabaseIdentityError, match="schema version 1, older than 2"):
            await s.identity()
        assert await s.create_schema()
        ident = await s.identity()
        assert ident.version == 2
        lease = await s.read_lease()
        assert lease is not None
        assert lease.epoch == 7
        taken = await s.acquire_lease(ONE, 10, force=False)
        assert taken.epoch == 8


def iter_plan(*sql: str):  # type: ignore[no-untyped-def]
    from confserv.store.plan import Query

    for statement in sql:
        yield Query(statement)


def test_a_zombie_or_a_reused_pid_is_known_dead_and_a_live_process_is_not() -> None:
    import socket
    import subprocess
    import sys
    import time

    me = Instance.this_process()
    assert not me.known_dead()
    assert not Instance(id="x", host="another-host", pid=2**22 + 9, start=1).known_dead()
    assert Instance(
        id="x", host=socket.gethostname(), pid=me.pid, start=(me.start or 0) + 1
    ).known_dead()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    inst = Instance(id="c", host=socket.gethostname(), pid=child.pid, start=None)
    for _ in range(500):  # until it has exited; not reaped (no wait): a zombie
        if inst.known_dead():
            break
        time.sleep(0.01)
    assert inst.known_dead()
    child.wait()


async def test_a_load_is_one_consistent_state_while_commits_land(store: ConfigStore) -> None:
    """Found by make chaos (PostgreSQL, first seed 125367, schedule 60): a server
    starting beside a writing primary loaded the objects, then the serial, in two
    statements; under READ COMMITTED four commits landed between them, so its memory
    said serial 23172 without their objects, and as the next primary it lost four
    acknowledged writes. Every read-only plan is now one snapshot."""
    c = Serials(store)
    base = await c.commit(0, Write("add", "Host", None, host("base")))
    offset = base.serial - 1  # type: ignore[attr-defined]
    done = trio.Event()
    inconsistent: list[tuple[int, int]] = []

    async def writer() -> None:
        for i in range(300):
            await c.commit(0, Write("add", "Host", None, host(f"h{i}")))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        while not done.is_set():
            snap = await store.load()
            if len(snap.objects) != snap.last_serial - offset:
                inconsistent.append((len(snap.objects), snap.last_serial))
    assert inconsistent == []


async def test_a_load_finishes_its_transaction_before_decoding(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by make chaos (PostgreSQL, first seed 177778): a server restarted beside
    111,000 objects decoded them inside its load transaction, between two statements;
    the transaction sat idle past PostgreSQL's idle_in_transaction_session_timeout
    (1 s), was ended, and the server crash-looped. Decoding now waits for the end of
    the transaction: here it takes 1.3 s, the load still succeeds (SQLite: no such
    timeout; the test checks that it still loads)."""
    import json
    import time

    from confserv.store import base

    c = Serials(store)
    await c.commit(0, Write("add", "Host", None, host("slow")))

    class SlowJson:
        slept = False

        @staticmethod
        def loads(text: str) -> object:
            if not SlowJson.slept:  # the whole decoding, stood for by one long pause
                SlowJson.slept = True
                time.sleep(1.3)  # blocks the loop, as decoding 100,000 objects does
            return json.loads(text)

        dumps = staticmethod(json.dumps)

    monkeypatch.setattr(base, "json", SlowJson)
    snap = await store.load()
    assert SlowJson.slept
    assert [o["name"] for o in snap.objects] == ["slow"]
    assert snap.last_serial == c.serial


async def test_a_forced_take_overrides_only_the_epoch_whose_holder_is_proven_dead(
    store: ConfigStore,
) -> None:
    """Invariant 4 (found in review of the supervisor's force): the supervisor saw the
    primary of epoch 1 die and sent a forced switch-to-primary; on its way, another
    live process took the lease (epoch 2). The forced take names the epoch its proof
    is about, and does not override the live holder of a newer one."""
    await store.acquire_lease(ONE, 10, force=False)  # epoch 1: the one that died
    await store.acquire_lease(TWO, 10, force=True)  # epoch 2: alive, valid
    three = holder("three")
    with pytest.raises(LeaseHeldError, match="the proof of death was for epoch 1"):
        await store.acquire_lease(three, 10, force=True, over=1)
    lease = await store.read_lease()
    assert lease is not None
    assert (lease.epoch, lease.holder) == (2, "two")
    # The proof about epoch 2 overrides it; no epoch named overrides anything (operator).
    assert (await store.acquire_lease(three, 10, force=True, over=2)).epoch == 3
    assert (await store.acquire_lease(ONE, 10, force=True)).epoch == 4
