"""The PostgreSQL store, through asyncpg; the only module that touches asyncio.

asyncpg speaks asyncio only, so it is reached through trio-asyncio: the
store's lifetime is an ``open_loop()`` block, and each transaction runs as one
asyncio coroutine (``aio_as_trio``) under a trio timeout. The transactions
themselves are the shared plans of :mod:`confserv.store`; rows are locked with
``FOR UPDATE`` where a plan asks, so the epoch check and the write are atomic
against a concurrent lease takeover.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import trio
import trio_asyncio

from .errors import ConstraintError, StoreError, UnavailableError
from .store import Plan, PlanStore, Query

_NOW = "(extract(epoch from clock_timestamp())::float8)"
_PLACEHOLDER = re.compile(r"\?")

_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def _to_pg(query: Query) -> str:
    counter = iter(range(1, len(query.params) + 1))
    sql = _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", query.sql).replace("{now}", _NOW)
    return sql + " FOR UPDATE" if query.lock else sql


class PgStore(PlanStore):
    """:class:`~confserv.store.ConfigStore` on PostgreSQL (open with :func:`open_pg_store`)."""

    engine = "postgre"

    def __init__(self, pool: asyncpg.Pool, timeout: float, where: str = "PostgreSQL") -> None:
        self._pool: asyncpg.Pool | None = pool
        self._timeout = timeout
        self.where = where

    async def _run_aio(self, plan: Plan) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is closed")
        async with pool.acquire() as conn, conn.transaction():
            try:
                query = next(plan)
                while True:
                    records = await conn.fetch(_to_pg(query), *query.params)
                    query = plan.send([tuple(r) for r in records])
            except StopIteration as done:
                return done.value

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        # ``write`` does not matter here: rows are locked only where a plan asks.
        try:
            with trio.fail_after(self._timeout):
                return await trio_asyncio.aio_as_trio(self._run_aio)(plan)
        except trio.TooSlowError as exc:
            raise UnavailableError(f"PostgreSQL did not answer within {self._timeout:g} s") from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintError(f"constraint violated: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"PostgreSQL unavailable: {exc}") from exc

    async def aclose(self) -> None:
        """Close the pool (shielded: clean-up must finish)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio_asyncio.aio_as_trio(pool.close)()


@asynccontextmanager
async def open_pg_store(
    *,
    host: str,
    port: int | None,
    dbname: str,
    user: str,
    password: str,
    timeout: float = 30.0,
    pool_size: int = 4,
) -> AsyncIterator[PgStore]:
    """Run a trio-asyncio loop and an asyncpg pool for the block's lifetime."""
    async with trio_asyncio.open_loop():
        try:
            with trio.fail_after(timeout):
                pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool)(
                    host=host,
                    port=port or 5432,
                    database=dbname,
                    user=user,
                    password=password,
                    min_size=1,
                    max_size=pool_size,
                    # A client stopped (SIGSTOP) inside a transaction must not hold
                    # the lease row's lock for ever: the server ends such sessions.
                    server_settings={"idle_in_transaction_session_timeout": "1000"},
                )
        except trio.TooSlowError as exc:
            raise UnavailableError(f"PostgreSQL at {host}:{port} did not answer") from exc
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise UnavailableError(f"cannot connect to PostgreSQL at {host}:{port}: {exc}") from exc
        store = PgStore(pool, timeout, f"PostgreSQL database {dbname!r} at {host}:{port or 5432}")
        try:
            yield store
        finally:
            await store.aclose()
