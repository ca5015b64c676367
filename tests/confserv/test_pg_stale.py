"""A pooled PostgreSQL connection lost under the store: asyncpg may have handed it back to
the pool already (its proxy then refuses every call, ``terminate()`` too). Found by
bench_multihost: after an isolation, clients were refused with asyncpg's "cannot call
Connection.terminate(): connection has been released back to the pool" instead of the
request being tried on a fresh connection."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import asyncpg

from confserv.store.postgres import PgStore


class Released:
    """A proxy whose connection was lost and handed back: every call is refused."""

    def transaction(self, **_: Any) -> Any:
        class Tx:
            async def start(self) -> None:
                raise asyncpg.InterfaceError("cannot call Connection.transaction(): released")

        return Tx()

    def terminate(self) -> None:
        raise asyncpg.InterfaceError(
            "cannot call Connection.terminate(): connection has been released back to the pool"
        )


class Good:
    """A fresh connection that runs the plan."""

    def transaction(self, **_: Any) -> Any:
        class Tx:
            async def start(self) -> None:
                return None

            async def commit(self) -> None:
                return None

            async def rollback(self) -> None:
                return None

        return Tx()

    async def fetch(self, *_: Any) -> list[Any]:
        return []

    def terminate(self) -> None:
        return None


class Pool:
    def __init__(self) -> None:
        self.handed = [Released(), Good()]
        self.expired = 0

    def get_max_size(self) -> int:
        return 4

    async def acquire(self) -> Any:
        return self.handed.pop(0)

    async def release(self, conn: Any) -> None:
        return None

    async def expire_connections(self) -> None:
        self.expired += 1


def plan() -> Generator[Any, Any, int]:
    return 42
    yield  # a generator: a plan with no query


def test_a_connection_already_handed_back_is_replaced_not_reported() -> None:
    pool = Pool()
    store = PgStore(pool, timeout=5.0)  # type: ignore[arg-type]
    assert asyncio.run(store._attempts(pool, plan(), True)) == 42  # type: ignore[arg-type]
    assert pool.expired == 1  # the others were likely stale too
