"""A PostgreSQL restart under a running pair (issue 17), real processes.

Found by make chaos: after a database restart the primary logged
``CannotConnectNowError`` tracebacks (the asyncpg pool's own upkeep task
retrying in the background) and asyncpg's "cannot switch to state 15;
another operation (2) is in progress" (an idle pooled connection the server
had ended, handed out again). The store now keeps no connection floor,
terminates any connection whose transaction was cut short (never handing it
out again), tries another connection when a pooled one turns out stale
before anything was sent, and turns every asyncpg failure into its own
one-line error: the pair is writable again within ``reconnect-timeout`` +
``lease-ttl``, and no server logs a traceback (this test fails on the
tracebacks without the fix).
"""

from __future__ import annotations

import pytest
import trio

from confserv.config.settings import DatabaseSettings

from ..helpers.system import Writer
from ..pg_cluster import PgCluster
from .test_pair_processes import PASSWORD, TTL, Proc, start_pair
from .test_pair_processes import pair as pair  # the fixture

pytestmark = pytest.mark.integration

#: The fixture's files leave reconnect-timeout at its default.
RECONNECT_TIMEOUT = 10.0


# only on postgre, not set up on the other engine to be skipped: a PostgreSQL restart
@pytest.mark.parametrize("db_settings", ["postgre"], indirect=True)
async def test_a_postgresql_restart_heals_without_a_traceback(
    pair: tuple[Proc, Proc, Proc], db_settings: DatabaseSettings, request: pytest.FixtureRequest
) -> None:
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    primary, backup, _proxy = pair
    await start_pair(primary, backup)
    writer = Writer([primary.address, backup.address], PASSWORD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(20)
        for _ in range(2):  # healed, then healed again from the healed state
            await trio.to_thread.run_sync(cluster.restart)
            restarted = trio.current_time()
            acked = len(writer.acked)
            try:
                await writer.until(acked + 5)
            except trio.TooSlowError:
                tails = "\n".join(
                    f"--- {proc.logfile.name}:\n"
                    + "\n".join(proc.logfile.read_text().splitlines()[-40:])
                    for proc in (primary, backup)
                )
                raise AssertionError(f"not writable 30 s after the restart\n{tails}") from None
            assert trio.current_time() - restarted <= RECONNECT_TIMEOUT + TTL
        writer.stop.set()
    for proc in (primary, backup):
        log = proc.logfile.read_text()
        assert "Traceback" not in log, log[-4000:]
        # Every failure was one line of the store's own (20150, or 20113 to a client).
        for line in log.splitlines():
            assert line[:4].isdigit(), line
            assert line[23:28] in (" Std ", " Alr ", " Int ", " Trc "), line


async def test_a_database_failure_while_loading_is_one_line_and_exit_1(
    db_settings: DatabaseSettings,
) -> None:
    """Found by make chaos (PostgreSQL, first seed 177778): a server whose start-up load
    was ended by the database printed an 80-line traceback and exited 1, every restart.
    It is now one line naming the failure, exit 1 (the supervisor restarts it)."""
    import contextlib
    import io
    from collections.abc import AsyncIterator
    from typing import Any

    from confserv.admin.bootstrap import init_database
    from confserv.server.app import run_process
    from confserv.store.base import ConfigStore
    from confserv.store.engines import open_store, use_store_opener
    from confserv.wire.errors import UnavailableError

    from .conftest import ADMIN_PASSWORD, LogCapture, make_settings

    settings = make_settings(db_settings)
    await init_database(settings, None, ADMIN_PASSWORD)

    class FailingLoad:
        def __init__(self, store: ConfigStore) -> None:
            self.store = store

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        async def load(self) -> Any:
            raise UnavailableError("PostgreSQL unavailable: terminating connection")

    err = io.StringIO()

    async def forever() -> str:
        await trio.sleep_forever()
        raise AssertionError("not reached")  # pragma: no cover

    assert settings.db is not None
    async with open_store(settings.db) as store:

        @contextlib.asynccontextmanager
        async def opener(db: DatabaseSettings, create: bool) -> AsyncIterator[Any]:
            yield FailingLoad(store)

        with use_store_opener(opener):
            code = await run_process(settings, LogCapture(), forever, err=err)  # type: ignore[arg-type]
    assert code == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, err.getvalue()
    assert "the database failed: PostgreSQL unavailable: terminating connection" in lines[0]


async def test_a_role_command_to_a_server_still_starting_is_refused_with_an_answer() -> None:
    """Found by make chaos (PostgreSQL, first seed 177778): a ``switch-to-primary`` that
    reached a server between its ports and its pair driver failed an assertion, and the
    link ended with a traceback. It is now refused, and the supervisor asks again."""
    from confserv.server.app import _LateHooks
    from confserv.wire.errors import PromotionRefusedError

    hooks = _LateHooks()
    with pytest.raises(PromotionRefusedError, match="still starting"):
        await hooks.promote(False)
    with pytest.raises(PromotionRefusedError, match="still starting"):
        await hooks.demote()
    hooks.peer_ack()  # an acknowledgement before the driver is dropped, as before
