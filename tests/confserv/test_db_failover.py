"""The Configuration Database on a replicated PostgreSQL: the store follows a failover.

A primary and a synchronous standby (``tests/pg_replica.py``), both listed in
the database section. The store connects to whichever accepts writes, in any
order of the list; after the primary's SIGKILL and the standby's promotion the
next request reaches the promoted standby, with the lease as it was; when no
listed server accepts writes, the error is one line naming each server and
why; and after the server behind the pool goes silent, one request pays the
timeout and the others go to the new primary at once (before the fix, each
pooled connection to the dead server cost a full timeout of its own).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import trio

from confserv.config.settings import DatabaseSettings
from confserv.store.engines import open_store
from confserv.store.instance import Instance
from confserv.store.leases import Holder
from confserv.wire.errors import UnavailableError
from tests.pg_cluster import PgCluster, require_pg_bin
from tests.pg_replica import ReplicatedCluster, replicated_cluster

pytestmark = pytest.mark.integration

HOLDER = Holder("confserv", Instance.this_process())


@pytest.fixture
def rc() -> Iterator[ReplicatedCluster]:
    bin_dir = require_pg_bin()
    with replicated_cluster(bin_dir=bin_dir) as cluster:
        yield cluster


def settings_for(
    rc: ReplicatedCluster, dbname: str, *servers: PgCluster, **kw: float
) -> DatabaseSettings:
    return DatabaseSettings(
        section="db",
        engine="postgre",
        host=", ".join(f"{pg.host}:{pg.port}" for pg in servers),
        dbname=dbname,
        username=rc.user,
        password=rc.password,
        **kw,
    )


async def test_the_store_follows_the_database_to_its_promoted_standby(
    rc: ReplicatedCluster,
) -> None:
    dbname = rc.create_database()
    # The standby first: the store still writes to the primary.
    db = settings_for(rc, dbname, rc.standby, rc.primary, response_timeout=5, connect_timeout=1)
    async with open_store(db, create=True) as store:
        await store.create_schema()
        lease = await store.acquire_lease(HOLDER, 30, force=False, address="a:1")
        await store.renew_lease(HOLDER, lease.epoch, 30)
        await trio.to_thread.run_sync(rc.kill_primary)
        with pytest.raises(UnavailableError) as failed:
            with trio.fail_after(3):  # refused at once: no timeout is waited for
                await store.renew_lease(HOLDER, lease.epoch, 30)
        assert "\n" not in str(failed.value)
        assert f"{rc.standby.host}:{rc.standby.port} is read-only (a standby?)" in str(failed.value)
        await trio.to_thread.run_sync(rc.promote_standby)
        promoted = time.monotonic()
        # The next request reaches the promoted standby; the lease is the one held.
        renewed = await store.renew_lease(HOLDER, lease.epoch, 30)
        assert time.monotonic() - promoted < db.connect_timeout
        assert (renewed.epoch, renewed.holder) == (lease.epoch, "confserv")


async def test_no_writable_server_is_one_line_naming_each(rc: ReplicatedCluster) -> None:
    dbname = rc.create_database()
    rc.primary.psql(
        "ALTER SYSTEM SET default_transaction_read_only = on;\nSELECT pg_reload_conf();\n"
    )
    db = settings_for(rc, dbname, rc.primary, rc.standby, connect_timeout=1)
    async with open_store(db) as store:
        with pytest.raises(UnavailableError) as failed, trio.fail_after(3):
            await store.read_lease()
    line = str(failed.value)
    p, s = rc.primary, rc.standby
    assert line == (
        f"no PostgreSQL server accepts writes: {p.host}:{p.port} is read-only (a standby?); "
        f"{s.host}:{s.port} is read-only (a standby?) "
        "(only standbys: promote one, or list the primary in host)"
    )


async def test_a_silent_server_costs_one_timeout_not_one_per_pooled_connection(
    rc: ReplicatedCluster,
) -> None:
    dbname = rc.create_database()
    db = settings_for(rc, dbname, rc.primary, rc.standby, response_timeout=1, connect_timeout=1)
    async with open_store(db, create=True) as store:
        await store.create_schema()
        lease = await store.acquire_lease(HOLDER, 30, force=False, address="a:1")
        async with trio.open_nursery() as nursery:  # the pool holds 4 connections now
            for _ in range(4):
                nursery.start_soon(store.read_lease)
        await trio.to_thread.run_sync(rc.primary.pause)  # a hung host: nobody answers
        await trio.to_thread.run_sync(rc.promote_standby)
        started = time.monotonic()
        outcomes = []
        for _ in range(4):
            try:
                await store.renew_lease(HOLDER, lease.epoch, 30)
                outcomes.append("renewed")
            except UnavailableError:
                outcomes.append("unavailable")
        took = time.monotonic() - started
    # One request waits out the timeout on a pooled connection; the other pooled
    # connections are replaced, on the promoted standby, at their next use.
    assert outcomes == ["unavailable", "renewed", "renewed", "renewed"]
    assert took < 2 * db.response_timeout + db.connect_timeout
