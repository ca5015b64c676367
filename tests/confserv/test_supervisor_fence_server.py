"""A real server refuses role commands from an older supervisor epoch (issue 14).

The server of the ``server`` fixture (a bootstrapped primary with a database,
run by ``run_server``, so its real pair driver carries out the commands).
"""

from __future__ import annotations

from typing import Any

import pytest

from confserv.client.session import open_client, open_management
from confserv.core.runtime import Runtime
from confserv.wire.errors import StaleSupervisorError

from .conftest import ADMIN_PASSWORD, SECRET

pytestmark = pytest.mark.integration


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
