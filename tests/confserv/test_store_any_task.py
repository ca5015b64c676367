"""The store is usable from any trio task, not only from those started inside its
``open_store`` block (the supervisor lease opens it in one task and asks from others).

On PostgreSQL every call used to look for the trio-asyncio loop of the calling
task's context, and a task started elsewhere found none: "'NoneType' object has
no attribute 'run_aio_coroutine'" (found on the multi-host bed, where the
supervisors' lease could not reach the database at all)."""

from __future__ import annotations

from typing import Any

import trio

from confserv.config.settings import DatabaseSettings
from confserv.store.engines import open_store


async def test_a_task_started_outside_the_block_uses_the_store(
    db_settings: DatabaseSettings,
) -> None:
    box: dict[str, Any] = {}
    ready, done = trio.Event(), trio.Event()

    async def keep() -> None:
        async with open_store(db_settings, create=True) as store:
            await store.create_schema()
            box["store"] = store
            ready.set()
            await done.wait()

    async def use() -> None:
        await ready.wait()
        box["lease"] = await box["store"].read_supervisor_lease()
        box["identity"] = await box["store"].identity()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep)  # the block lives in this task
        nursery.start_soon(use)  # and this one, a sibling, uses the store
    assert box["lease"] is None
    assert box["identity"] is not None
