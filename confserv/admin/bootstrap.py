"""``cfgctl init``: the schema and the bootstrap objects of a new Configuration Database.

Creates, when missing: the tenant ``Environment``, the host the servers run
on, the Application objects of the primary (and backup, linked as a
warm-standby pair), the administrator group ``Administrators`` (every right)
and the administrator Person ``default`` in it. Existing objects are left as
they are, so running it twice changes nothing; only an administrator Person
that is not in the administrator group (a database made before access
control) is put in it, so that someone can still administer it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from confserv.config.settings import ServerSettings
from confserv.core.service import ConfigService
from confserv.store.engines import open_store
from confserv.wire.errors import ConfServError

TENANT = "Environment"
ADMIN = "default"
ADMIN_GROUP = "Administrators"


class BootstrapError(ConfServError):
    """The database cannot be initialised now (e.g. a server holds the pair's lease)."""


@dataclass(frozen=True, slots=True)
class BootstrapReport:
    """What ``init`` did: the names it created, and those already there."""

    created: list[str]
    existing: list[str]
    uuid: str = ""


def _app(settings: ServerSettings, host_dbid: int, tenant_dbid: int) -> dict[str, Any]:
    return {
        "name": settings.section,
        "app_type": "ConfigServer",
        "is_server": True,
        "host_dbid": host_dbid,
        "tenant_dbid": tenant_dbid,
        "port": settings.port,
        "autorestart": True,
        "command_line": "confserv",
        "command_line_arguments": f"-s {settings.section} -c {settings.file}",
        "options": {"confserv": {"management-port": str(settings.management_port or "")}},
    }


async def init_database(
    primary: ServerSettings, backup: ServerSettings | None, password: str
) -> BootstrapReport:
    """Create the schema and bootstrap objects in the database ``primary`` names."""
    assert primary.db is not None
    created: list[str] = []
    existing: list[str] = []
    async with open_store(primary.db, create=True) as store:
        if await store.create_schema():
            created.append(f"schema of {store.where}")
        identity = await store.identity()
        lease = await store.read_lease()
        assert lease is not None
        service = ConfigService(store)
        await service.reload()
        service.epoch = lease.epoch
        service.writable = True

        async def ensure(type_name: str, obj: dict[str, Any]) -> int:
            found = service.find(type_name, obj["name"])
            if found is not None:
                existing.append(f"{type_name} {obj['name']}")
                return int(found["dbid"])
            if lease.valid:
                raise BootstrapError(
                    f"{type_name} {obj['name']!r} is missing but server {lease.holder!r} holds "
                    "the database's lease: create it through the server "
                    "(cfgctl put) or stop the servers first"
                )
            change = await service.create(type_name, obj)
            created.append(f"{type_name} {obj['name']}")
            return change.dbid

        tenant = await ensure("Tenant", {"name": TENANT})
        host = await ensure(
            "Host", {"name": socket.gethostname(), "ip_address": "127.0.0.1", "tenant_dbid": tenant}
        )
        backup_dbid = None
        if backup is not None:
            backup_dbid = await ensure("Application", _app(backup, host, tenant))
        app = _app(primary, host, tenant)
        if backup_dbid is not None:
            app |= {"backup_server_dbid": backup_dbid, "redundancy_type": "warm-standby"}
        await ensure("Application", app)
        group = await ensure(
            "AccessGroup", {"name": ADMIN_GROUP, "is_administrator": True, "tenant_dbid": tenant}
        )
        admin = {"name": ADMIN, "user_name": ADMIN, "password": password, "tenant_dbid": tenant}
        admin_dbid = await ensure("Person", {**admin, "access_group_dbids": [group]})
        joined = list((service.get("Person", admin_dbid) or {}).get("access_group_dbids") or [])
        if group not in joined:
            if lease.valid:
                raise BootstrapError(
                    f"Person {ADMIN!r} is not in {ADMIN_GROUP!r} but server {lease.holder!r} "
                    "holds the database's lease: stop the servers first"
                )
            await service.update("Person", admin_dbid, {"access_group_dbids": [*joined, group]})
            created.append(f"Person {ADMIN} in AccessGroup {ADMIN_GROUP}")
    return BootstrapReport(created=created, existing=existing, uuid=identity.uuid)
