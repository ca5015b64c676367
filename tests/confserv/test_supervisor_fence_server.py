"""A real server refuses role commands from an older supervisor epoch (issue 14).

The server of the ``server`` fixture (a bootstrapped primary with a database,
run by ``run_server``, so its real pair driver carries out the commands).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from confserv.client.session import open_client, open_management
from confserv.config.settings import DatabaseSettings
from confserv.core.runtime import Runtime
from confserv.wire.errors import StaleSupervisorError

from .conftest import ADMIN_PASSWORD, SECRET
from .test_pair import Proxy, start_pair

pytestmark = pytest.mark.integration


async def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms, failing after ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def test_a_switch_from_an_older_supervisor_epoch_is_refused_and_does_nothing(
    server: dict[str, Any],
) -> None:
    rt: Runtime = server["runtime"]
    log = server["log"]
    async with open_management("127.0.0.1", server["management_port"], SECRET) as m:
        assert m.initial_status["supervisor_epoch"] == 0
        answer = await m.switch_to_backup(supervisor_epoch=5)
        assert (answer["role"], answer["supervisor_epoch"]) == ("backup", 5)
        assert rt.role == "backup"
        answer = await m.switch_to_primary(supervisor_epoch=5)  # the same supervisor
        assert (answer["role"], answer["writable"]) == ("primary", True)
        epoch = answer["epoch"]

        # A supervisor that lost its lease (epoch 4) tries to demote it: refused.
        with pytest.raises(StaleSupervisorError) as refused:
            await m.switch_to_backup(supervisor_epoch=4)
        assert str(refused.value) == (
            "supervisor epoch 4 is older than epoch 5, already seen here: "
            "a newer supervisor is active"
        )
        assert refused.value.newest == 5
        # ... and nothing was done: still primary, writable, same lease epoch.
        status = await m.status()
        assert (status["role"], status["writable"], status["epoch"]) == ("primary", True, epoch)
        assert status["supervisor_epoch"] == 5
        async with open_client(
            [server["address"]], app="t", user="default", password=ADMIN_PASSWORD
        ) as c:
            made = await c.create("Tenant", {"name": "written-after-the-refusal"})
            assert made["epoch"] == epoch
        ids = log.ids()
        assert ids.count(20123) == 1  # the refusal, once
        assert ids.count(20124) == 1  # epoch 5 seen

        # The active supervisor (5), then a newer one (6): admitted.
        answer = await m.switch_to_backup(supervisor_epoch=5)
        assert answer["role"] == "backup"
        answer = await m.switch_to_primary(supervisor_epoch=6)
        assert (answer["role"], answer["supervisor_epoch"]) == ("primary", 6)
        assert log.ids().count(20124) == 2
        # An operator's command, without an epoch: admitted as today.
        answer = await m.switch_to_backup()
        assert (answer["role"], answer["supervisor_epoch"]) == ("backup", 6)
        assert rt.role == "backup"
        with pytest.raises(StaleSupervisorError, match="epoch 5 is older than epoch 6"):
            await m.switch_to_primary(force=True, supervisor_epoch=5)
        assert rt.role == "backup"


async def test_an_older_supervisors_demote_held_up_by_a_write_does_not_overtake_a_newer_one(
    server: dict[str, Any],
) -> None:
    """switch-to-backup waits for writes in progress before it reaches the pair
    driver: a newer supervisor's command that arrives meanwhile must not be
    overtaken by it (each fenced command is admitted and carried out in turn)."""
    rt: Runtime = server["runtime"]
    log = server["log"]

    def received(op: str) -> int:
        """How many ``op`` commands the server has received (event 20122)."""
        return sum(i == 20122 and f"'{op}'" in text for i, text in log.events)

    port = server["management_port"]
    async with (
        open_management("127.0.0.1", port, SECRET) as old,
        open_management("127.0.0.1", port, SECRET) as new,
    ):
        await old.switch_to_primary(supervisor_epoch=4)  # primary already: nothing done
        async with trio.open_nursery() as nursery, rt.service.write_lock:  # a write in progress
            nursery.start_soon(lambda: old.switch_to_backup(supervisor_epoch=4))
            await wait_for(lambda: received("switch-to-backup") == 1)  # waiting for the write
            nursery.start_soon(lambda: new.switch_to_primary(supervisor_epoch=5))
            await wait_for(lambda: received("switch-to-primary") == 2)
        # The demote came first, so it went first; the newer supervisor's promotion last.
        status = await new.status()
        assert (status["role"], status["supervisor_epoch"]) == ("primary", 5)


async def test_a_proxy_refuses_a_follow_from_an_older_supervisor_and_keeps_its_master(
    db_settings: DatabaseSettings, nursery: trio.Nursery
) -> None:
    primary, backup = await start_pair(db_settings, nursery)
    proxy = Proxy(primary, backup)
    await proxy.start(nursery)
    follower = proxy.info["follower"]
    at_primary = f"127.0.0.1:{primary.info['management_port']}"
    await wait_for(lambda: follower.master_name == at_primary)
    async with proxy.manage() as m:
        answer = await m.follow("127.0.0.1", primary.info["management_port"], supervisor_epoch=3)
        assert (answer["role"], answer["supervisor_epoch"]) == ("proxy", 3)
        with pytest.raises(StaleSupervisorError, match="epoch 2 is older than epoch 3"):
            await m.follow("127.0.0.1", backup.info["management_port"], supervisor_epoch=2)
        assert follower.rotation.preferred is None  # the backup was not named to try next
        assert follower.master_name == at_primary
        assert (await m.status())["supervisor_epoch"] == 3
    assert 20123 in proxy.log.ids()
