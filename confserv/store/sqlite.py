"""The SQLite store: the embedded default, as correct as the PostgreSQL one.

One ``sqlite3`` connection in WAL mode, used from one worker thread at a time
(``trio.to_thread.run_sync`` with a limiter of one). Each plan runs in its own
``BEGIN IMMEDIATE`` transaction, which takes the database's write lock, so
writers of two processes sharing the file are serialised and the epoch check
and the write are atomic. ``synchronous=FULL``: a commit that was acknowledged
survives a crash of the process or the machine.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import Any

import trio

from confserv.wire.errors import (
    ConstraintError,
    DatabaseIdentityError,
    StoreError,
    UnavailableError,
)

from .base import Plan, PlanStore

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

#: How long a writer waits for another process's write lock, in milliseconds.
BUSY_TIMEOUT_MS = 10_000


#: The mode of the database file and of SQLite's -wal, -shm and -journal files,
#: which SQLite creates with the database file's mode: the file holds the hashes.
FILE_MODE = 0o600


def private_file(path: str) -> None:
    """Create ``path`` empty with mode 0600 when it is missing (SQLite takes an empty
    file as a new database); an existing file group/world can read, and its -wal and
    -shm files, are made 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnavailableError(f"cannot create SQLite file {path}: {exc}") from exc
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, FILE_MODE)
        except OSError:
            continue  # missing (or not ours): SQLite reports what matters


class SqliteStore(PlanStore):
    """:class:`~confserv.store.base.ConfigStore` on a SQLite file."""

    engine = "sqlite"

    def __init__(self, path: Path | str, *, now_sql: str = _NOW) -> None:
        self.path = str(path)
        self.where = f"SQLite file {self.path}"
        self.now_sql = now_sql  # a simulation substitutes its own clock here
        self._conn: sqlite3.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._file: tuple[int, int] | None = None

    @classmethod
    async def open(cls, path: Path | str, *, create: bool = False) -> SqliteStore:
        """Open and configure the connection. Only ``create`` (``cfgctl init``) makes a
        missing file: a server never re-creates a deleted database empty."""
        store = cls(path)
        await trio.to_thread.run_sync(
            functools.partial(store._connect, create=create), limiter=store._limiter
        )
        return store

    def _connect(self, *, create: bool = False) -> None:
        if create and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
        elif self.path != ":memory:" and not Path(self.path).is_file():
            raise DatabaseIdentityError(
                f"{self.where} does not exist: run 'cfgctl init' with this server's "
                "configuration file to create it, or fix dbname"
            )
        try:
            if self.path == ":memory:":
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            else:
                mode = "rwc" if create else "rw"
                uri = f"{Path(self.path).absolute().as_uri()}?mode={mode}"
                conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
                )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot open {self.where}: {exc}") from exc
        self._conn = conn
        self._file = self._file_id()

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def file_changed(self) -> str | None:
        """Why the file is no longer the one opened (deleted, replaced), or None.

        An open connection goes on using a deleted or renamed-over file, so this is
        the only way to notice that the path now names another database (or none)."""
        if self.path == ":memory:" or self._file is None:
            return None
        now = self._file_id()
        if now is None:
            return f"{self.where} was deleted while open"
        if now != self._file:
            return f"{self.where} was replaced by another file while open"
        return None

    async def reopen(self) -> None:
        """Open the path again (never creating it) and use that connection from now
        on; when that fails the old connection is kept and the error raised."""
        old = self._conn
        await trio.to_thread.run_sync(self._connect, limiter=self._limiter)
        if old is not None:
            await trio.to_thread.run_sync(old.close, limiter=self._limiter)

    def run_sync(self, plan: Plan) -> Any:
        """Run one plan in a transaction, in this thread (simulations and tools)."""
        return self._run_sync(plan)

    def _run_sync(self, plan: Plan, *, write: bool = True) -> Any:
        conn = self._conn
        if conn is None:
            raise StoreError("the SQLite store is closed")
        try:
            # Read-only plans do not take the write lock, so a writer stopped in
            # its transaction (SIGSTOP) does not block them.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                query = next(plan)
                while True:
                    sql = query.sql.replace("{now}", self.now_sql)
                    rows = conn.execute(sql, query.params).fetchall()
                    query = plan.send(rows)
            except StopIteration as done:
                conn.execute("COMMIT")
                return done.value
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as exc:
            raise ConstraintError(f"constraint violated: {exc}") from exc
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"SQLite database {self.path}: {exc}") from exc

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        return await trio.to_thread.run_sync(
            functools.partial(self._run_sync, plan, write=write), limiter=self._limiter
        )

    async def aclose(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await trio.to_thread.run_sync(conn.close, limiter=self._limiter)
