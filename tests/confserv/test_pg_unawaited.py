"""An asyncio error that no task awaited is one log line, not the end of the store.

Found by running the PostgreSQL restart test under load (make test at three workers):
asyncpg left a failed future behind when PostgreSQL went away ("Future exception was
never retrieved: ConnectionError: unexpected connection_lost() call"), trio-asyncio's
default handler raised it into the loop's nursery, and the primary exited with a
traceback instead of riding through the restart.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
import trio
import trio_asyncio

from confserv.store.postgres import open_pg_store
from confserv.wire.errors import UnavailableError
from tests.helpers.system import free_port


async def test_an_error_no_task_awaited_is_logged_once_and_the_store_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = ("127.0.0.1", free_port())  # no PostgreSQL: the pool connects on demand
    caplog.set_level(logging.WARNING, logger="asyncpg")
    async with open_pg_store(
        addresses=[refused], dbname="x", user="u", password="p", timeout=3, connect_timeout=1
    ) as store:

        async def leave_an_error_behind() -> None:
            waiter = asyncio.get_running_loop().create_future()
            waiter.set_exception(ConnectionError("unexpected connection_lost() call"))
            del waiter  # never retrieved: asyncio reports it when it is collected
            gc.collect()

        await trio_asyncio.aio_as_trio(leave_an_error_behind, loop=store._loop)()
        await trio.sleep(0.2)  # a report raised into the loop's nursery cancels this
        with pytest.raises(UnavailableError):  # the store still answers: one line, refused
            await store.read_lease()
    reports = [r for r in caplog.records if "unawaited" in r.getMessage()]
    assert len(reports) == 1, caplog.text
    assert "unexpected connection_lost() call" in reports[0].getMessage()
    assert reports[0].exc_info is None  # one line, no traceback
