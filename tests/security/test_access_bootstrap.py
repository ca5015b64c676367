"""Issue 12, access control: ``cfgctl init`` makes the administrator group with the
administrator in it, and puts back an administrator left out of it (a database
made before access control), so that someone can still administer it."""

from __future__ import annotations

from pathlib import Path

from confserv.admin.bootstrap import ADMIN, ADMIN_GROUP, init_database
from confserv.config.settings import DatabaseSettings
from confserv.core.service import ConfigService
from confserv.store.engines import open_store
from tests.confserv.conftest import ADMIN_PASSWORD, make_settings


async def admin_groups(db: DatabaseSettings) -> tuple[list[int], int]:
    async with open_store(db) as store:
        service = ConfigService(store)
        await service.reload()
        admin = service.find("Person", ADMIN)
        group = service.find("AccessGroup", ADMIN_GROUP)
        assert admin is not None
        assert group is not None
        assert group["is_administrator"] is True
        return list(admin["access_group_dbids"]), int(group["dbid"])


async def test_init_makes_the_administrator_an_administrator(tmp_path: Path) -> None:
    db = DatabaseSettings(section="db", engine="sqlite", dbname=str(tmp_path / "cfg.sqlite"))
    settings = make_settings(db)
    report = await init_database(settings, None, ADMIN_PASSWORD)
    assert f"AccessGroup {ADMIN_GROUP}" in report.created
    groups, group = await admin_groups(db)
    assert groups == [group]
    # An administrator taken out of the group (as in a database from before access
    # control) is put back by the next init; nothing else changes.
    async with open_store(db) as store:
        service = ConfigService(store)
        await service.reload()
        lease = await store.read_lease()
        assert lease is not None
        service.epoch, service.writable = lease.epoch, True
        person = service.find("Person", ADMIN)
        assert person is not None
        await service.update("Person", person["dbid"], {"access_group_dbids": []})
    again = await init_database(settings, None, ADMIN_PASSWORD)
    assert again.created == [f"Person {ADMIN} in AccessGroup {ADMIN_GROUP}"]
    assert (await admin_groups(db))[0] == [group]
    assert (await init_database(settings, None, ADMIN_PASSWORD)).created == []
