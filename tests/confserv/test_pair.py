"""A warm-standby pair in one process on one database (SQLite and PostgreSQL).

Real lease, real sockets, real database clock: waits are for conditions under
deadlines. The same pair as separate processes killed with signals is in
``test_pair_processes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from confserv.admin.bootstrap import init_database
from confserv.client.session import open_client, open_management
from confserv.config.settings import DatabaseSettings
from confserv.core.runtime import Runtime
from confserv.server.app import run_server
from confserv.wire.errors import (
    BackupModeError,
    FencedError,
    NoServerError,
    PromotionRefusedError,
    ReadOnlyError,
    UnavailableError,
)

from .conftest import ADMIN_PASSWORD, SECRET, LogCapture, make_settings

pytestmark = pytest.mark.integration


async def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms, failing after ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


class Server:
    """One server of the pair, started and stopped inside the test's nursery."""

    def __init__(self, db: DatabaseSettings, section: str, **kw: Any) -> None:
        self.settings = make_settings(db, section=section, lease_ttl=1.5, lease_renew=0.3, **kw)
        self.log = LogCapture()
        self.scope = trio.CancelScope()
        self.info: dict[str, Any] = {}

    @property
    def rt(self) -> Runtime:
        return self.info["runtime"]

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.info["port"])

    async def start(self, nursery: trio.Nursery) -> None:
        async def run(task_status: trio.TaskStatus[dict[str, Any]]) -> None:
            with self.scope:
                await run_server(self.settings, log=self.log, task_status=task_status)

        self.info = await nursery.start(run)

    def crash(self) -> None:
        self.scope.cancel()

    def manage(self) -> Any:
        return open_management("127.0.0.1", self.info["management_port"], SECRET)


def client(*servers: Server) -> Any:
    return open_client(
        [s.address for s in servers], app="t", user="default", password=ADMIN_PASSWORD
    )


async def start_pair(db: DatabaseSettings, nursery: trio.Nursery) -> tuple[Server, Server]:
    """A fresh database's pair, started: the primary serving, the backup following."""
    primary, backup = Server(db, "confserv"), Server(db, "backup")
    await init_database(primary.settings, backup.settings, ADMIN_PASSWORD)
    await primary.start(nursery)
    await wait_for(lambda: primary.rt.role == "primary")
    await backup.start(nursery)
    await wait_for(lambda: backup.rt.role == "backup")
    return primary, backup


@pytest.fixture
async def pair(db_settings: DatabaseSettings, nursery: trio.Nursery) -> tuple[Server, Server]:
    return await start_pair(db_settings, nursery)


async def test_the_backup_follows_every_change_and_refuses_clients(
    pair: tuple[Server, Server],
) -> None:
    primary, backup = pair
    async with client(primary) as c:
        for i in range(30):
            await c.create("Host", {"name": f"h{i}"})
        await c.update("Host", 2, {"ip_address": "10.0.0.2"}, {"s": {"k": "v"}})
    await wait_for(lambda: backup.rt.service.last_serial == primary.rt.service.last_serial)
    assert list(backup.rt.service.all_objects()) == list(primary.rt.service.all_objects())
    assert backup.rt.primary_hint == f"127.0.0.1:{primary.info['port']}"
    # Given only the backup, the client follows its hint to the primary.
    async with client(backup) as c:
        assert c.address == primary.address
    # Given both, it finds the primary whichever comes first.
    async with client(backup, primary) as c:
        assert c.info["role"] == "primary"
    assert 20112 in backup.log.ids()


async def test_planned_switchover_loses_nothing_and_swaps_roles(
    pair: tuple[Server, Server],
) -> None:
    primary, backup = pair
    async with client(primary) as c:
        await c.create("Tenant", {"name": "before"})
    async with primary.manage() as m:
        answer = await m.switch_to_backup()
        assert answer["role"] == "backup"
    async with backup.manage() as m:
        answer = await m.switch_to_primary()
        assert answer["role"] == "primary"
        assert answer["epoch"] == 2
    async with client(primary, backup) as c:
        assert c.address == backup.address
        assert [t["name"] for t in await c.read("Tenant", {"name": "before"})] == ["before"]
        await c.create("Tenant", {"name": "after"})
    await wait_for(lambda: primary.rt.service.last_serial == backup.rt.service.last_serial)
    assert primary.rt.service.find("Tenant", "after") is not None
    assert 20162 in primary.log.ids()


async def test_a_server_switched_back_to_backup_names_the_primary_and_no_loss(
    pair: tuple[Server, Server],
) -> None:
    """Switchover and back: the server demoted the second time has never lost a
    stream in its new role, so refused clients follow its hint at once instead of
    asking it again and again for a promotion that is not coming (issue 16)."""
    primary, backup = pair
    async with primary.manage() as m:
        await m.switch_to_backup()
    # As when its stream from the primary had ended before (a kill, a cut): the flag
    # refused clients are told, "primary lost: a promotion may come".
    backup.rt.primary_lost = True
    async with backup.manage() as m:
        await m.switch_to_primary()
    assert backup.rt.primary_lost is False  # a primary has lost nothing
    await wait_for(lambda: primary.rt.following is not None)
    async with backup.manage() as m:
        await m.switch_to_backup()
    assert backup.rt.primary_lost is False
    async with primary.manage() as m:
        await m.switch_to_primary()
    await wait_for(lambda: primary.rt.role == "primary")
    # Told "primary lost", a client would ask the demoted server again for up to
    # promotion_wait (10 s) before trying the next one.
    with trio.fail_after(2):
        async with client(backup, primary) as c:
            assert c.address == primary.address
            await c.create("Tenant", {"name": "after two switchovers"})


async def test_no_promotion_while_the_lease_is_valid_unless_forced(
    pair: tuple[Server, Server],
) -> None:
    primary, backup = pair
    async with client(primary) as old, backup.manage() as m:
        with pytest.raises(PromotionRefusedError, match="holds a valid lease"):
            await m.switch_to_primary()
        assert backup.rt.role == "backup"
        answer = await m.switch_to_primary(force=True)
        assert (answer["role"], answer["epoch"]) == ("primary", 2)
        # The deposed primary can commit nothing: the epoch check refuses the
        # write (or, once its renewal failed, it already refuses as a backup).
        with pytest.raises((FencedError, ReadOnlyError, BackupModeError)):
            await old.create("Tenant", {"name": "from-the-old-primary"})
    await wait_for(lambda: primary.rt.role == "backup")
    assert backup.rt.service.find("Tenant", "from-the-old-primary") is None


async def test_a_crashed_primary_is_replaced_once_its_lease_expires(
    pair: tuple[Server, Server],
) -> None:
    primary, backup = pair
    async with client(primary) as c:
        made = [(await c.create("Switch", {"name": f"sw{i}"}))["serial"] for i in range(5)]
    primary.crash()
    async with backup.manage() as m:
        with trio.fail_after(10):
            while True:
                try:
                    answer = await m.switch_to_primary()
                    break
                except PromotionRefusedError:
                    await trio.sleep(0.05)
    assert answer["epoch"] == 2
    assert backup.rt.service.last_serial >= made[-1]
    async with client(backup) as c:
        assert len(await c.read("Switch")) == 5


async def test_a_promotion_whose_catch_up_fails_gives_the_lease_back(
    pair: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, backup = pair
    primary.crash()
    real_catch_up = backup.rt.service.catch_up
    failures = [UnavailableError("the database went away after the lease was taken")]

    async def catch_up() -> int:
        if failures:
            raise failures.pop()
        return await real_catch_up()

    monkeypatch.setattr(backup.rt.service, "catch_up", catch_up)
    async with backup.manage() as m:
        with pytest.raises(PromotionRefusedError, match="catching up from the database failed"):
            await m.switch_to_primary(force=True)
        assert backup.rt.role == "backup"
        assert not backup.rt.service.writable
        # The lease was given back: the next try needs no force and no wait for expiry.
        answer = await m.switch_to_primary()
        assert answer["role"] == "primary"
    async with client(backup) as c:
        assert (await c.create("Tenant", {"name": "after-the-retry"}))["epoch"] == answer["epoch"]


async def test_a_client_given_no_primary_gets_a_clear_error(pair: tuple[Server, Server]) -> None:
    primary, backup = pair
    primary.crash()
    with pytest.raises(NoServerError, match="backup"):
        async with client(backup):
            pass


async def test_a_resilient_client_follows_a_failover_and_loses_no_acknowledged_write(
    pair: tuple[Server, Server],
) -> None:
    from confserv.client.resilient import open_resilient_client
    from confserv.wire.errors import ConnectionLostError

    primary, backup = pair
    acked: list[str] = []
    unknown: list[str] = []
    async with (
        open_resilient_client(
            [primary.address, backup.address],
            app="writer",
            user="default",
            password=ADMIN_PASSWORD,
            reconnect_timeout=0.05,
        ) as rc,
        open_resilient_client(
            [primary.address, backup.address],
            app="watcher",
            user="default",
            password=ADMIN_PASSWORD,
            reconnect_timeout=0.05,
        ) as watcher,
    ):
        await watcher.subscribe("DN")

        async def write(n: int) -> None:
            name = f"dn{n}"
            try:
                await rc.create("DN", {"name": name})
                acked.append(name)
            except ConnectionLostError:
                unknown.append(name)

        for i in range(20):
            await write(i)
        primary.crash()
        async with backup.manage() as m:
            await m.switch_to_primary(force=True)  # the test saw the crash: proof of death
        with trio.fail_after(15):
            for i in range(20, 40):
                await write(i)
        assert rc.address == backup.address
        assert len(acked) >= 39
        names = {d["name"] for d in await rc.read("DN")}
        assert set(acked) <= names
        # The watcher saw every acknowledged change once, in serial order, across the failover.
        with trio.fail_after(15):
            seen = [await watcher.notification() for _ in range(len(names))]
        serials = [n["serial"] for n in seen]
        assert serials == sorted(serials)
        assert {n["data"]["name"] for n in seen} == names


class Proxy(Server):
    """A proxy in front of the pair."""

    def __init__(self, primary: Server, backup: Server) -> None:
        masters = (
            ("127.0.0.1", primary.info["management_port"]),
            ("127.0.0.1", backup.info["management_port"]),
        )
        self.settings = make_settings(None, section="proxy", mode="proxy", masters=masters)  # type: ignore[arg-type]
        self.log = LogCapture()
        self.scope = trio.CancelScope()
        self.info = {}

    async def start(self, nursery: trio.Nursery) -> None:
        from confserv.server.proxy import run_proxy

        async def run(task_status: trio.TaskStatus[dict[str, Any]]) -> None:
            with self.scope:
                await run_proxy(self.settings, log=self.log, task_status=task_status)

        self.info = await nursery.start(run)
        await wait_for(lambda: self.rt.role == "proxy")


async def test_a_proxy_serves_reads_relays_writes_and_follows_a_failover(
    pair: tuple[Server, Server], nursery: trio.Nursery
) -> None:
    primary, backup = pair
    proxy = Proxy(primary, backup)
    await proxy.start(nursery)
    follower = proxy.info["follower"]
    async with client(primary) as c:
        await c.create("Tenant", {"name": "t-primary"})
    await wait_for(lambda: proxy.rt.service.find("Tenant", "t-primary") is not None)
    async with client(proxy) as pc, client(proxy) as watcher:
        await watcher.subscribe("Tenant")
        made = await pc.create("Tenant", {"name": "t-via-proxy"})  # relayed to the primary
        assert primary.rt.service.get("Tenant", made["dbid"]) is not None
        note = await watcher.notification()
        assert note["data"]["name"] == "t-via-proxy"

        primary.crash()
        async with backup.manage() as m:
            await m.switch_to_primary(force=True)
        promoted = trio.current_time()
        # Reads keep being served from memory meanwhile.
        assert [t["name"] for t in await pc.read("Tenant", {"name": "t-primary"})] == ["t-primary"]
        await wait_for(lambda: follower.master_name.endswith(str(backup.info["management_port"])))
        redirect = trio.current_time() - promoted
        assert redirect < 5  # the benchmark measures it; here only that it happens
        made = await pc.create("Tenant", {"name": "t-after-failover"})
        assert made["epoch"] == 2
        note = await watcher.notification()
        assert note["data"]["name"] == "t-after-failover"
        assert note["epoch"] == 2


async def test_options_that_differ_between_primary_and_backup_raise_an_alarm_on_both(
    db_settings: DatabaseSettings, nursery: trio.Nursery
) -> None:
    """The seed: the backup's options must be the primary's, log options aside."""
    from addp import AddpOptions

    primary = Server(db_settings, "confserv")
    backup = Server(db_settings, "backup", max_frame_size=1 << 20, addp=AddpOptions.addp(2, 2))
    await init_database(primary.settings, backup.settings, ADMIN_PASSWORD)
    await primary.start(nursery)
    await wait_for(lambda: primary.rt.role == "primary")
    await backup.start(nursery)
    await wait_for(lambda: 20173 in primary.rt.alarms and 20173 in backup.rt.alarms)
    for server in (primary, backup):
        text = server.rt.status()["alarms"][0]
        assert text.startswith("20173 options differ from ")
        assert "[server] max-frame-size: here" in text
        assert "[server] addp-timeout" in text
        assert server.log.ids().count(20173) == 1
    # Ports and names differ between the two, and are not reported.
    assert "port:" not in primary.rt.alarms[20173].replace("max-frame-size", "")


async def test_equal_options_raise_no_alarm(pair: tuple[Server, Server]) -> None:
    primary, backup = pair
    await wait_for(lambda: backup.rt.service.last_serial == primary.rt.service.last_serial)
    async with client(primary) as c:
        await c.create("Host", {"name": "x"})
    await wait_for(lambda: backup.rt.service.last_serial == primary.rt.service.last_serial)
    assert primary.rt.alarms == backup.rt.alarms == {}
