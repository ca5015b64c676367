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

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from confserv.config.settings import DatabaseSettings
from confserv.store.engines import open_store
from confserv.store.instance import Instance
from confserv.store.leases import Holder
from confserv.store.postgres import _keep_alive
from confserv.wire.errors import UnavailableError
from tests.pg_cluster import PgCluster, require_pg_bin
from tests.pg_replica import ReplicatedCluster, replicated_cluster

from ..helpers.system import Writer, cfgctl_init, free_port
from .test_pair_processes import BIN, PASSWORD, SECRET, Proc, start_pair

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
    rc: ReplicatedCluster, tmp_path: Path
) -> None:
    conf, _, dbname = write_pair_conf(rc, tmp_path)
    p, s = rc.primary, rc.standby
    # No listed server accepts writes (the primary made read-only too): one line
    # naming each server and why, at once; a server starting on it says so and exits 1.
    p.psql("ALTER SYSTEM SET default_transaction_read_only = on;\nSELECT pg_reload_conf();\n")
    line = (
        f"no PostgreSQL server accepts writes: {p.host}:{p.port} is read-only (a standby?); "
        f"{s.host}:{s.port} is read-only (a standby?) "
        "(only standbys: promote one, or list the primary in host)"
    )
    db = settings_for(rc, dbname, p, s, response_timeout=5, connect_timeout=1)
    async with open_store(db) as store:
        with pytest.raises(UnavailableError) as failed, trio.fail_after(3):
            await store.read_lease()
    assert str(failed.value) == line
    started = await trio.run_process(
        [str(BIN / "confserv"), "-s", "confserv", "-c", str(conf)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    said = [x for x in started.stderr.decode().splitlines() if "accepts writes" in x]
    assert started.returncode == 1
    assert said == [
        f"confserv: [confserv] stopped: the database failed: {line} "
        "(exit 1: the supervisor restarts it)"
    ]
    assert b"Traceback" not in started.stderr
    p.psql("ALTER SYSTEM RESET default_transaction_read_only;\nSELECT pg_reload_conf();\n")
    # The standby first in the list: the store still writes to the primary.
    db = settings_for(rc, dbname, s, p, response_timeout=5, connect_timeout=1)
    async with open_store(db, create=True) as store:
        await store.create_schema()
        lease = await store.acquire_lease(HOLDER, 30, force=False, address="a:1")
        await store.renew_lease(HOLDER, lease.epoch, 30)
        await trio.to_thread.run_sync(rc.kill_primary)
        with pytest.raises(UnavailableError) as failed:
            with trio.fail_after(3):  # refused at once: no timeout is waited for
                await store.renew_lease(HOLDER, lease.epoch, 30)
        assert "\n" not in str(failed.value)
        assert f"{s.host}:{s.port} is read-only (a standby?)" in str(failed.value)
        await trio.to_thread.run_sync(rc.promote_standby)
        promoted = time.monotonic()
        # The next request reaches the promoted standby; the lease is the one held.
        renewed = await store.renew_lease(HOLDER, lease.epoch, 30)
        assert time.monotonic() - promoted < db.connect_timeout
        assert (renewed.epoch, renewed.holder) == (lease.epoch, "confserv")


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


# -- a real pair on the replicated database ------------------------------------------

#: The pair's lease and the database section's connect timeout in this test.
PAIR_TTL = 2.0
PAIR_RENEW = 0.5
CONNECT_TIMEOUT = 1.0


def write_pair_conf(rc: ReplicatedCluster, tmp_path: Path) -> tuple[Path, list[int], str]:
    """The pair's ``pair.conf`` on a fresh database of ``rc`` (listing both servers),
    initialised by ``cfgctl init``: (file, ports, database name)."""
    ports = [free_port() for _ in range(4)]
    dbname = rc.create_database()
    common = (
        f"management-secret = {SECRET}\nserver = dbserver\nlease-ttl = {PAIR_TTL:g}\n"
        f"lease-renew = {PAIR_RENEW:g}\nprotocol = addp\naddp-timeout = 1\n"
        "addp-remote-timeout = 1\n"
    )
    conf = tmp_path / "pair.conf"
    conf.write_text(
        f"[confserv]\nport = {ports[0]}\nmanagement-port = {ports[1]}\n{common}"
        f"[backup]\nport = {ports[2]}\nmanagement-port = {ports[3]}\n{common}"
        "[log]\nverbose = all\nall = stderr\n"
        f"[dbserver]\ndbengine = postgre\ndbname = {dbname}\nhost = {rc.hosts}\n"
        f"username = {rc.user}\npassword = {rc.password}\n"
        f"connect-timeout = {CONNECT_TIMEOUT:g}\nresponse-timeout = 5\n"
    )
    conf.chmod(0o600)
    cfgctl_init(conf, PASSWORD)
    return conf, ports, dbname


@pytest.fixture
def pair_on_replica(rc: ReplicatedCluster, tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    conf, ports, _ = write_pair_conf(rc, tmp_path)
    primary = Proc(conf, "confserv", ports[0], ports[1], tmp_path / "primary.log")
    backup = Proc(conf, "backup", ports[2], ports[3], tmp_path / "backup.log")
    try:
        yield primary, backup
    finally:
        primary.stop()
        backup.stop()


async def names_in(rc: ReplicatedCluster, pg: PgCluster, dbname: str) -> set[str]:
    """The DN names in the database ``pg`` holds, read from it directly."""
    db = settings_for(rc, dbname, pg)
    async with open_store(db) as store:
        snapshot = await store.load()
    return {o["name"] for o in snapshot.objects if o["type"] == "DN"}


async def test_the_pair_rides_through_a_database_failover(
    rc: ReplicatedCluster, pair_on_replica: tuple[Proc, Proc]
) -> None:
    """The standby is promoted after the primary's lease has run out (as a Patroni
    failover takes longer than a lease): the primary holds on by the failsafe (the
    backup still follows it), without writes, and renews on the promoted standby."""
    outage = PAIR_TTL + 1.0
    primary, backup = pair_on_replica
    await start_pair(primary, backup)
    writer = Writer([primary.address, backup.address], PASSWORD)
    roles: list[tuple[str | None, str | None]] = []

    async def watch() -> None:  # the backup never turns primary: one writer throughout
        while True:
            statuses = [await p.status() or {} for p in (primary, backup)]
            roles.append((statuses[0].get("role"), statuses[1].get("role")))
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        nursery.start_soon(watch)
        await writer.until(20)
        await trio.to_thread.run_sync(rc.kill_primary)
        await trio.sleep(outage)
        await trio.to_thread.run_sync(rc.promote_standby)
        promoted = time.monotonic()
        acked = len(writer.acked)
        await writer.until(acked + 20)
        writer.stop.set()
        nursery.cancel_scope.cancel()
    resumed = writer.first_ack(promoted, primary.address, 0)
    assert resumed is not None
    # The bound: the next request after the promotion, plus at most one connect timeout.
    assert resumed.at - promoted < CONNECT_TIMEOUT + 1.0, resumed.at - promoted
    # One writer at every moment: the primary answered every write, at one epoch (it
    # kept its lease through the database's failover), and the backup stayed backup.
    assert {a.address for a in writer.acks} == {primary.address}
    assert len({a.epoch for a in writer.acks}) == 1
    assert roles
    assert all(b != "primary" for _, b in roles), roles
    # Synchronous replication: every acknowledged write is in the new primary database.
    dbname = (primary.conf.read_text().split("dbname = ", 1)[1]).split("\n", 1)[0]
    assert set(writer.acked) <= await names_in(rc, rc.standby, dbname)
    for proc in (primary, backup):
        log = proc.logfile.read_text()
        assert "Traceback" not in log, log[-4000:]


def test_every_connection_gives_up_on_a_silent_server_after_the_connect_timeout() -> None:
    """TCP keep-alives and TCP_USER_TIMEOUT: the kernel ends a connection whose server
    went silent (a crashed or cut-off host) after about ``connect-timeout``, so that a
    request on it fails then rather than after ``response-timeout``."""
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as sock,
    ):
        conn = SimpleNamespace(_transport=SimpleNamespace(get_extra_info=lambda _: sock))
        _keep_alive(conn, 2.5)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 2
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 1
