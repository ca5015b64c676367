"""Open the store a database section names: SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .base import ConfigStore
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from confserv.config.settings import DatabaseSettings


@asynccontextmanager
async def open_store(db: DatabaseSettings, *, create: bool = False) -> AsyncIterator[ConfigStore]:
    """Open the Configuration Database of ``db`` for the block's lifetime (``create``:
    ``cfgctl init`` only, may create a missing SQLite file)."""
    if db.engine == "sqlite":
        store = await SqliteStore.open(db.dbname, create=create)
        try:
            yield store
        finally:
            await store.aclose()
        return
    from .postgres import open_pg_store  # asyncio enters only with PostgreSQL

    async with open_pg_store(
        host=db.host,
        port=db.port,
        dbname=db.dbname,
        user=db.username,
        password=db.password,
        timeout=min(db.response_timeout, 30.0),
    ) as pg:
        yield pg
