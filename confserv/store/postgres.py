"""The PostgreSQL store, through asyncpg; the only module that touches asyncio.

asyncpg speaks asyncio only, so it is reached through trio-asyncio: the
store's lifetime is an ``open_loop()`` block, and each transaction runs as one
asyncio coroutine (``aio_as_trio``) under an asyncio timeout (a trio timeout a
little longer is only a backstop). The transactions themselves are the shared
plans of :mod:`confserv.store.plan`; rows are locked with ``FOR UPDATE`` where a plan
asks, so the epoch check and the write are atomic against a concurrent lease
takeover; a read-only plan (a load, a history read) runs in one REPEATABLE
READ snapshot, so its statements see one state of the database.

A connection whose transaction was cut short (a timeout, a cancellation, the
server restarting, any driver failure) is terminated, never handed back to the
pool to be reused: asyncpg would otherwise find a second operation on it while
the first is still unwinding ("cannot switch to state 15; another operation
(2) is in progress", seen after a PostgreSQL restart). Only a plan's own
refusal (fenced, stale memory, not found) or a constraint violation rolls back
on a healthy connection. Every asyncpg failure becomes the store's own
:class:`~confserv.wire.errors.UnavailableError` or ``ConstraintError``: one line for
the log, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import trio
import trio_asyncio

from confserv.wire.errors import ConfServError, ConstraintError, StoreError, UnavailableError

from .base import Plan, PlanStore, Query

_log = logging.getLogger(__name__)

_NOW = "(extract(epoch from clock_timestamp())::float8)"
_PLACEHOLDER = re.compile(r"\?")

#: What the driver or the server may raise when PostgreSQL is unreachable, restarting
#: or failing: all of it is "unavailable" to the callers (who retry).
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

#: How an idle pooled connection that the server has ended fails its first statement.
_STALE = (
    OSError,
    asyncpg.InternalClientError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
)

#: Failures after which the connection is still in a known state (rolled back).
_CLEAN = (ConfServError, asyncpg.IntegrityConstraintViolationError)


def _to_pg(query: Query) -> str:
    counter = iter(range(1, len(query.params) + 1))
    sql = _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", query.sql).replace("{now}", _NOW)
    return sql + " FOR UPDATE" if query.lock else sql


class PgStore(PlanStore):
    """:class:`~confserv.store.base.ConfigStore` on PostgreSQL (open with :func:`open_pg_store`)."""

    engine = "postgre"

    def __init__(self, pool: asyncpg.Pool, timeout: float, where: str = "PostgreSQL") -> None:
        self._pool: asyncpg.Pool | None = pool
        self._timeout = timeout
        self.where = where

    async def _run_aio(self, plan: Plan, write: bool) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is closed")
        async with asyncio.timeout(self._timeout):
            attempts = pool.get_max_size() + 1  # every idle one may be stale, then a new one
            for attempt in range(1, attempts + 1):
                conn = await pool.acquire()
                try:
                    # A read-only plan reads in several statements: one snapshot for
                    # all of them (under READ COMMITTED a load saw the serial of
                    # commits whose objects it had not seen: acknowledged writes lost).
                    transaction = (
                        conn.transaction()
                        if write
                        else conn.transaction(isolation="repeatable_read", readonly=True)
                    )
                    try:
                        await transaction.start()
                    except _STALE as exc:
                        # An idle connection the server ended (a restart): nothing of
                        # the plan was sent, so another try on another one is safe.
                        conn.terminate()
                        if attempt == attempts:
                            raise
                        _log.info("a pooled connection was stale (%s); another one", exc)
                        continue
                    try:
                        result = await _steps(conn, plan)
                    except _CLEAN:
                        await transaction.rollback()
                        raise
                    await transaction.commit()
                    return result
                except BaseException as exc:
                    if not isinstance(exc, _CLEAN):
                        with contextlib.suppress(asyncpg.InterfaceError):  # already gone
                            conn.terminate()  # cut short: never reuse (module docstring)
                    raise
                finally:
                    await pool.release(conn)  # the pool replaces a terminated connection
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        # Writes lock rows where a plan asks; reads run in one snapshot (write=False).
        try:
            with trio.fail_after(self._timeout + 1.0):  # backstop: asyncio's comes first
                return await trio_asyncio.aio_as_trio(self._run_aio)(plan, write)
        except (trio.TooSlowError, TimeoutError) as exc:
            raise UnavailableError(f"PostgreSQL did not answer within {self._timeout:g} s") from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintError(f"constraint violated: {exc}") from exc
        except asyncpg.InternalClientError as exc:
            # asyncpg's word for a connection the server ended under an operation
            # (a restart or shutdown): "cannot switch to state ...".
            raise UnavailableError(
                f"PostgreSQL ended the connection during a request (restarting or stopping?): {exc}"
            ) from exc
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the pool (shielded: clean-up must finish)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio_asyncio.aio_as_trio(pool.close)()


async def _steps(conn: Any, plan: Plan) -> Any:
    """Feed ``plan`` its rows, query by query; its return value."""
    try:
        query = next(plan)
        while True:
            records = await conn.fetch(_to_pg(query), *query.params)
            query = plan.send([tuple(r) for r in records])
    except StopIteration as done:
        return done.value


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
                    # No floor: the pool's own upkeep task would retry in the
                    # background after a restart; connections are made on demand.
                    min_size=0,
                    max_size=pool_size,
                    # A client stopped (SIGSTOP) inside a transaction must not hold
                    # the lease row's lock for ever: the server ends such sessions.
                    server_settings={"idle_in_transaction_session_timeout": "1000"},
                )
        except trio.TooSlowError as exc:
            raise UnavailableError(f"PostgreSQL at {host}:{port} did not answer") from exc
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"cannot connect to PostgreSQL at {host}:{port}: {exc}") from exc
        store = PgStore(pool, timeout, f"PostgreSQL database {dbname!r} at {host}:{port or 5432}")
        try:
            yield store
        finally:
            await store.aclose()
