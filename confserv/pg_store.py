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
from .models import ddl
from .store import (
    Change,
    Lease,
    Plan,
    Query,
    Snapshot,
    Write,
    acquire_lease_plan,
    commit_plan,
    history_plan,
    init_lease_plan,
    load_plan,
    read_lease_plan,
    release_lease_plan,
    renew_lease_plan,
    schema_plan,
    trim_plan,
)

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


class PgStore:
    """:class:`~confserv.store.ConfigStore` on PostgreSQL (open with :func:`open_pg_store`)."""

    engine = "postgre"

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool: asyncpg.Pool | None = pool
        self._timeout = timeout

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

    async def _run(self, plan: Plan) -> Any:
        try:
            with trio.fail_after(self._timeout):
                return await trio_asyncio.aio_as_trio(self._run_aio)(plan)
        except trio.TooSlowError as exc:
            raise UnavailableError(f"PostgreSQL did not answer within {self._timeout:g} s") from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintError(f"constraint violated: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"PostgreSQL unavailable: {exc}") from exc

    async def create_schema(self) -> None:
        """Create the tables and counters if missing."""
        await self._run(schema_plan(ddl("postgre")))

    async def load(self) -> Snapshot:
        """Read every object and the last serial."""
        snapshot: Snapshot = await self._run(load_plan())
        return snapshot

    async def commit(self, pair: str, epoch: int, write: Write) -> Change:
        """Commit ``write`` under the epoch check."""
        change: Change = await self._run(commit_plan(pair, epoch, write))
        return change

    async def history_since(self, serial: int, limit: int) -> list[Change] | None:
        """Changes after ``serial``, or None when they cannot all be given."""
        result: list[Change] | None = await self._run(history_plan(serial, limit))
        return result

    async def trim_history(self, max_age: float) -> int:
        """Delete history older than ``max_age`` seconds."""
        count: int = await self._run(trim_plan(max_age))
        return count

    async def read_lease(self, pair: str) -> Lease | None:
        """The pair's lease."""
        lease: Lease | None = await self._run(read_lease_plan(pair))
        return lease

    async def init_lease(self, pair: str) -> None:
        """Create the pair's lease row at epoch 0 if missing."""
        await self._run(init_lease_plan(pair))

    async def acquire_lease(
        self, pair: str, holder: str, ttl: float, *, force: bool, address: str = ""
    ) -> Lease:
        """Take the lease, raising the epoch, and publish where we serve."""
        lease: Lease = await self._run(acquire_lease_plan(pair, holder, ttl, force, address))
        return lease

    async def renew_lease(self, pair: str, holder: str, epoch: int, ttl: float) -> Lease:
        """Extend our lease."""
        lease: Lease = await self._run(renew_lease_plan(pair, holder, epoch, ttl))
        return lease

    async def release_lease(self, pair: str, holder: str, epoch: int) -> None:
        """Give up our lease."""
        await self._run(release_lease_plan(pair, holder, epoch))

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
        store = PgStore(pool, timeout)
        try:
            yield store
        finally:
            await store.aclose()
