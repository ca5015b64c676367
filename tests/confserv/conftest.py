"""Fixtures: a Configuration Database on each engine, and a running server.

Every store and server test runs on SQLite and on a real PostgreSQL that the
session starts itself (``tests/pg_cluster.py``); without PostgreSQL binaries
the PostgreSQL half is skipped, except under CI where it fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from confserv.admin.bootstrap import init_database
from confserv.config.settings import DatabaseSettings, ServerSettings
from confserv.logs.eventlog import EventLog
from confserv.model.passwords import COST_ENV
from confserv.server.app import run_server
from tests.pg_cluster import PgCluster, require_pg_bin, running_cluster

ADMIN_PASSWORD = "admin-pw"

#: A low password cost for every database these tests make and every server they
#: start (in-process or not): the suite logs in very often. scrypt's cheapest, as
#: tests/helpers/system.py and the simulation use. Production keeps OWASP's.
os.environ.setdefault(COST_ENV, "n=2,r=1,p=1")
SECRET = "mgmt-secret"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    require_pg_bin()
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgre"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    if request.param == "sqlite":
        return DatabaseSettings(section="db", engine="sqlite", dbname=str(tmp_path / "cfg.sqlite"))
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return DatabaseSettings(
        section="db",
        engine="postgre",
        host=cluster.host,
        port=cluster.port,
        dbname=cluster.create_database(),
        username=cluster.user,
        password=cluster.password,
        response_timeout=30,
    )


def make_settings(db: DatabaseSettings, section: str = "confserv", **kw: Any) -> ServerSettings:
    """Server settings on ephemeral ports."""
    values: dict[str, Any] = {
        "file": Path("test.conf"),
        "section": section,
        "port": 0,
        "management_port": 0,
        "management_secret": SECRET,
        "db": db,
        "lease_ttl": 10.0,
        "lease_renew": 3.0,
    }
    values.update(kw)
    return ServerSettings(**values)


class LogCapture(EventLog):
    """An event log that keeps (id, text) of every event for assertions."""

    def __init__(self) -> None:
        super().__init__("test", sys.stderr, verbose="all")
        self.events: list[tuple[int, str]] = []

    def emit(self, event: Any, _tail: str = "", **fields: Any) -> str:
        text = super().emit(event, _tail, **fields)
        self.events.append((event.id, text))
        return text

    def ids(self) -> list[int]:
        return [i for i, _ in self.events]


@pytest.fixture
async def server(
    db_settings: DatabaseSettings, nursery: trio.Nursery
) -> AsyncIterator[dict[str, Any]]:
    """A running primary, bootstrapped; yields its ports, runtime and log."""
    settings = make_settings(db_settings)
    await init_database(settings, None, ADMIN_PASSWORD)
    log = LogCapture()
    info = await nursery.start(
        lambda task_status: run_server(settings, log=log, task_status=task_status)
    )
    return {**info, "log": log, "settings": settings, "address": ("127.0.0.1", info["port"])}
