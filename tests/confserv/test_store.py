"""The store contract, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from confserv.config import DatabaseSettings
from confserv.errors import ConstraintError, FencedError, LeaseHeldError
from confserv.store import ConfigStore, Write
from confserv.stores import open_store

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(db_settings: DatabaseSettings) -> AsyncIterator[ConfigStore]:
    async with open_store(db_settings) as s:
        await s.create_schema()
        await s.create_schema()  # idempotent
        await s.init_lease("p")
        yield s


def host(name: str) -> dict[str, object]:
    return {"type": "Host", "name": name, "state": "enabled", "options": {}}


async def test_writes_get_serials_and_dbids_in_order(store: ConfigStore) -> None:
    a = await store.commit("p", 0, Write("add", "Host", None, host("a")))
    b = await store.commit("p", 0, Write("add", "Host", None, host("b")))
    assert (a.serial, a.dbid, b.serial, b.dbid) == (1, 1, 2, 2)
    changed = {**host("b2"), "dbid": 2}
    c = await store.commit("p", 0, Write("change", "Host", 2, changed, {"delta": {"name": "b2"}}))
    assert c.serial == 3
    d = await store.commit("p", 0, Write("delete", "Host", 1, None, {"name": "a"}))
    assert d.serial == 4
    snap = await store.load()
    assert snap.last_serial == 4
    assert [o["name"] for o in snap.objects] == ["b2"]


async def test_dbids_are_never_reused(store: ConfigStore) -> None:
    await store.commit("p", 0, Write("add", "Host", None, host("a")))
    b = await store.commit("p", 0, Write("add", "Host", None, host("b")))
    await store.commit("p", 0, Write("delete", "Host", b.dbid, None, {"name": "b"}))
    c = await store.commit("p", 0, Write("add", "Host", None, host("c")))
    assert c.dbid == b.dbid + 1


async def test_a_write_with_a_stale_epoch_is_fenced_and_leaves_nothing(
    store: ConfigStore,
) -> None:
    lease = await store.acquire_lease("p", "one", 10, force=False)
    assert lease.epoch == 1
    await store.commit("p", 1, Write("add", "Host", None, host("a")))
    taken = await store.acquire_lease("p", "two", 10, force=True)
    assert taken.epoch == 2
    with pytest.raises(FencedError, match="epoch 1 is not the lease's epoch 2"):
        await store.commit("p", 1, Write("add", "Host", None, host("b")))
    snap = await store.load()
    assert [o["name"] for o in snap.objects] == ["a"]
    assert snap.last_serial == 1


async def test_a_duplicate_name_is_a_constraint_error(store: ConfigStore) -> None:
    await store.commit("p", 0, Write("add", "Host", None, host("a")))
    with pytest.raises(ConstraintError):
        await store.commit("p", 0, Write("add", "Host", None, host("a")))
    assert (await store.load()).last_serial == 1


async def test_lease_rules(store: ConfigStore) -> None:
    first = await store.acquire_lease("p", "one", 10, force=False)
    assert first.valid
    assert first.holder == "one"
    with pytest.raises(LeaseHeldError, match="held by 'one' at epoch 1") as held:
        await store.acquire_lease("p", "two", 10, force=False)
    assert held.value.holder == "one"
    again = await store.acquire_lease("p", "one", 10, force=False)
    assert again.epoch == 2  # re-taking our own lease still starts a new epoch
    renewed = await store.renew_lease("p", "one", 2, 20)
    assert renewed.remaining > 15
    with pytest.raises(FencedError):
        await store.renew_lease("p", "one", 1, 20)
    await store.release_lease("p", "one", 2)
    released = await store.read_lease("p")
    assert released is not None
    assert not released.valid
    second = await store.acquire_lease("p", "two", 10, force=False)
    assert second.epoch == 3


async def test_an_expired_lease_can_be_taken(store: ConfigStore) -> None:
    await store.acquire_lease("p", "one", 0.01, force=False)
    # The database clock moves on; wait for expiry by reading the lease.
    import trio

    with trio.fail_after(5):
        while (lease := await store.read_lease("p")) is not None and lease.valid:
            await trio.sleep(0.01)
    taken = await store.acquire_lease("p", "two", 10, force=False)
    assert (taken.holder, taken.epoch) == ("two", 2)


async def test_history_since_and_its_limits(store: ConfigStore) -> None:
    for i in range(5):
        await store.commit("p", 0, Write("add", "Host", None, host(f"h{i}")))
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


async def test_a_complete_schema_is_not_touched_while_another_writer_holds_the_database(
    store: ConfigStore, db_settings: DatabaseSettings
) -> None:
    """Found by make chaos: a server starting beside a busy primary ran its DDL
    (CREATE ... IF NOT EXISTS still locks the tables), deadlocked with the writes on
    PostgreSQL, crashed, and crash-looped. A complete schema now gets no DDL: start-up
    only reads, and does not wait for a writer holding the database."""
    if db_settings.engine != "sqlite":
        pytest.skip("SQLite makes the wait visible: a writer holds the whole database")
    import sqlite3

    holder = sqlite3.connect(db_settings.dbname, isolation_level=None, timeout=1)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, left open
    try:
        with trio.fail_after(3):  # DDL would wait the 10 s busy timeout, then fail
            await store.create_schema()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
