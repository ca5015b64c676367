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

A replicated database (multihost helper P) lists all its servers; each new
connection goes to the one that accepts writes. Every listed server is tried
*at once*, each with asyncpg's ``target_session_attrs = "read-write"`` and its
own ``connect-timeout``, and the first writable one is taken (asyncpg's own
list is tried in order under one timeout, so a crashed host that swallows the
connect would use it all up before the promoted standby is tried). When none
accepts writes the error names each server and why (read-only: a standby).
After a connection fails (the server died, restarted, turned read-only, did
not answer), the pool's other connections are expired: each is replaced by a
fresh one to the writable server at its next use, instead of each costing a
timeout of its own. Every connection keeps TCP keep-alives and a
``TCP_USER_TIMEOUT`` of ``connect-timeout``, so that the kernel ends one whose
server went silent (a crashed or cut-off host) instead of a request waiting
for ``response-timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import trio
import trio_asyncio

from confserv.wire.errors import ConfServError, ConstraintError, StoreError, UnavailableError

from .base import Plan, PlanStore, Query

_log = logging.getLogger(__name__)
#: asyncpg's errors that no task awaited: a child of "asyncpg", which a server routes
#: into its log as one line (20150).
_unawaited = logging.getLogger("asyncpg.unawaited")

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

#: Failures that say the server itself is gone or no longer the writable one: every
#: pooled connection to it is expired (replaced at its next use).
_SERVER_LOST = (
    *_STALE,
    TimeoutError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.CannotConnectNowError,
)


def _to_pg(query: Query) -> str:
    counter = iter(range(1, len(query.params) + 1))
    sql = _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", query.sql).replace("{now}", _NOW)
    return sql + " FOR UPDATE" if query.lock else sql


class PgStore(PlanStore):
    """:class:`~confserv.store.base.ConfigStore` on PostgreSQL (open with :func:`open_pg_store`)."""

    engine = "postgre"

    def __init__(
        self, pool: asyncpg.Pool, timeout: float, where: str = "PostgreSQL", loop: Any = None
    ) -> None:
        self._pool: asyncpg.Pool | None = pool
        #: The trio-asyncio loop the pool lives on: named in every call, so that any
        #: trio task may use the store, not only those started inside open_pg_store.
        self._loop = loop
        self._timeout = timeout
        self.where = where
        #: Times the pool's connections were expired after a lost server (for tests).
        self.expiries = 0
        #: Seconds a graceful close of the pool may take before it is terminated.
        self.grace = min(timeout, 5.0)

    async def _run_aio(self, plan: Plan, write: bool) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is closed")
        try:
            return await self._attempts(pool, plan, write)
        except (*_SERVER_LOST, UnavailableError):
            # The other pooled connections went to the same server: replace each at
            # its next use (on the writable server) rather than let each time out.
            self.expiries += 1
            await pool.expire_connections()
            raise

    async def _attempts(self, pool: asyncpg.Pool, plan: Plan, write: bool) -> Any:
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
                        # the plan was sent, so another try on another one is safe. Its
                        # loss may have handed it back to the pool already (asyncpg then
                        # refuses the proxy: "released back to the pool").
                        with contextlib.suppress(asyncpg.InterfaceError):
                            conn.terminate()
                        if attempt == attempts:
                            raise
                        _log.info("a pooled connection was stale (%s); another one", exc)
                        self.expiries += 1
                        await pool.expire_connections()  # the others are likely stale too
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
                return await trio_asyncio.aio_as_trio(self._run_aio, loop=self._loop)(plan, write)
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
        """Close the pool (shielded: clean-up must finish): gracefully for ``grace``
        seconds, then by terminating what is left (a server that went silent would
        otherwise hold the close for its full 5 s)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio_asyncio.aio_as_trio(_close_pool, loop=self._loop)(pool, self.grace)


async def _close_pool(pool: asyncpg.Pool, grace: float) -> None:
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        pool.terminate()


def _keep_alive(conn: Any, timeout: float) -> None:
    """TCP keep-alives and ``TCP_USER_TIMEOUT`` on a new connection (Linux; a no-op
    elsewhere): a server that goes silent is given up after about ``timeout``."""
    sock = conn._transport.get_extra_info("socket")  # asyncpg has no public handle
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    seconds = max(1, round(timeout))
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), seconds),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), seconds),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None), int(timeout * 1000)),
    ]
    for level, name, value in options:
        if name is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(level, name, value)


def _why(exc: BaseException, timeout: float) -> str:
    """Why one server was not taken, for the one-line error."""
    if isinstance(exc, asyncpg.TargetServerAttributeNotMatched):
        return "is read-only (a standby?)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"did not answer within {timeout:g} s"
    if isinstance(exc, OSError):
        return f"refused or unreachable ({exc.strerror or exc})"
    return f"failed: {type(exc).__name__}: {exc}"


def _writable_connector(addresses: Sequence[tuple[str, int]], timeout: float) -> Any:
    """The pool's ``connect``: a connection to the server of ``addresses`` that accepts
    writes, trying all at once (module docstring); UnavailableError naming each
    server and why when none does."""

    async def connect_one(host: str, port: int, kwargs: dict[str, Any]) -> Any:
        conn = await asyncpg.connect(
            host=host, port=port, timeout=timeout, target_session_attrs="read-write", **kwargs
        )
        _keep_alive(conn, timeout)
        return conn

    async def connect(*_args: Any, loop: Any = None, **kwargs: Any) -> Any:
        tasks = {
            asyncio.ensure_future(connect_one(host, port, kwargs)): (host, port)
            for host, port in addresses
        }
        why: dict[tuple[str, int], str] = {}
        chosen: Any = None
        pending = set(tasks)
        try:
            while pending and chosen is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        why[tasks[task]] = _why(exc, timeout)
                    elif chosen is None:
                        chosen = task.result()
                    else:
                        task.result().terminate()  # two writable servers: take one
        finally:
            for task in pending:
                task.cancel()
            for late in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(late, asyncpg.Connection):
                    late.terminate()
        if chosen is not None:
            return chosen
        reasons = "; ".join(f"{h}:{p} {why[(h, p)]}" for h, p in addresses)
        if len(addresses) == 1:
            raise UnavailableError(f"PostgreSQL at {reasons}")
        hint = (
            " (only standbys: promote one, or list the primary in host)"
            if all(w.startswith("is read-only") for w in why.values())
            else ""
        )
        raise UnavailableError(f"no PostgreSQL server accepts writes: {reasons}{hint}")

    return connect


def _unawaited_error(_loop: Any, context: dict[str, Any]) -> None:
    """asyncio's report of an error that no task awaited, as one log line.

    asyncpg leaves such errors behind when PostgreSQL goes away under it (a
    connection's waiter failed with "unexpected connection_lost() call" after its
    caller had given up: "Future exception was never retrieved"). The failure
    itself reaches the store's caller on its own path, as UnavailableError.
    trio-asyncio's default handler would raise the report into the loop's
    nursery, which ends the store and with it the server (seen in a PostgreSQL
    restart under load: the primary exited with a traceback)."""
    exc = context.get("exception")
    message = context.get("message") or "an asyncio error no task awaited"
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    _unawaited.warning("asyncpg left an error unawaited (ignored): %s%s", message, detail)


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
    addresses: Sequence[tuple[str, int]],
    dbname: str,
    user: str,
    password: str,
    timeout: float = 30.0,
    connect_timeout: float = 5.0,
    pool_size: int = 4,
) -> AsyncIterator[PgStore]:
    """Run a trio-asyncio loop and an asyncpg pool for the block's lifetime, on the
    server of ``addresses`` that accepts writes (whichever it is at each connect)."""
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addresses)
    async with trio_asyncio.open_loop() as loop:
        loop.set_exception_handler(_unawaited_error)
        try:
            with trio.fail_after(timeout):
                pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool)(
                    connect=_writable_connector(tuple(addresses), min(connect_timeout, timeout)),
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
            raise UnavailableError(f"PostgreSQL at {where} did not answer") from exc
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"cannot connect to PostgreSQL at {where}: {exc}") from exc
        store = PgStore(pool, timeout, f"PostgreSQL database {dbname!r} at {where}", loop)
        store.grace = min(connect_timeout, store.grace)
        try:
            yield store
        finally:
            await store.aclose()
