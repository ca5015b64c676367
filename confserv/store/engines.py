"""Open the store a database section names: SQLite or PostgreSQL.

A simulation may open its own stores instead, for a task and the tasks it
starts (:func:`use_store_opener`); one context-variable lookup per open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from .base import ConfigStore
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from confserv.config.settings import DatabaseSettings

#: Opens the store of a database section (``create``: may create a missing database).
StoreOpener = Callable[["DatabaseSettings", bool], AbstractAsyncContextManager[ConfigStore]]

_opener: ContextVar[StoreOpener | None] = ContextVar("confserv_store_opener", default=None)


@contextmanager
def use_store_opener(opener: StoreOpener) -> Iterator[None]:
    """Open stores with ``opener`` in this task, and in the tasks it starts from here on,
    for the block's lifetime (a simulated database instead of the real engines)."""
    token = _opener.set(opener)
    try:
        yield
    finally:
        _opener.reset(token)


@asynccontextmanager
async def open_store(db: DatabaseSettings, *, create: bool = False) -> AsyncIterator[ConfigStore]:
    """Open the Configuration Database of ``db`` for the block's lifetime (``create``:
    ``cfgctl init`` only, may create a missing SQLite file)."""
    opener = _opener.get()
    if opener is not None:
        async with opener(db, create) as store:
            yield store
        return
    if db.engine == "sqlite":
        store = await SqliteStore.open(db.dbname, create=create)
        try:
            yield store
        finally:
            await store.aclose()
        return
    from .postgres import open_pg_store  # asyncio enters only with PostgreSQL

    async with open_pg_store(
        addresses=db.addresses,  # several: the one that accepts writes (multihost helper P)
        dbname=db.dbname,
        user=db.username,
        password=db.password,
        timeout=min(db.response_timeout, 30.0),
        connect_timeout=db.connect_timeout,
    ) as pg:
        yield pg
