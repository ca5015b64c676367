"""SIGSTOP of a server process outside or inside a SQLite write transaction, and the
check between: for the tests about a stopped primary (``tests/helpers/system.py``
re-exports them)."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import trio


def sqlite_write_lock_free(path: str | Path) -> bool:
    """Whether no process holds the SQLite database's write lock right now."""
    conn = sqlite3.connect(str(path), timeout=0.05)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


async def stop_outside_a_transaction(pid: int, sqlite_file: str | Path | None) -> None:
    """SIGSTOP ``pid``; with SQLite (``sqlite_file``), not while it holds the write lock.

    A process stopped inside a SQLite transaction keeps the database's lock,
    and nobody can take the lease until it is resumed or killed (the supervisor
    kills it after ``fence-after``). Tests about the lease running out stop
    the primary between transactions.
    """
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        if sqlite_file is None or sqlite_write_lock_free(sqlite_file):
            return
        os.kill(pid, signal.SIGCONT)
        await trio.sleep(0.003)
    raise AssertionError("the process never left its transaction")


async def stop_inside_a_transaction(pid: int, sqlite_file: str | Path) -> float:
    """SIGSTOP ``pid`` while it holds the SQLite database's write lock; the trio time
    it was stopped. The worst case for a failover on SQLite: nobody can even take
    the lease until the process is killed."""
    with trio.fail_after(60):
        while True:
            os.kill(pid, signal.SIGSTOP)
            stopped = trio.current_time()
            if not sqlite_write_lock_free(sqlite_file):
                # Another process's short transaction (the backup renewing its claim)
                # holds the lock for a millisecond; the stopped one holds it for good.
                await trio.sleep(0.05)
                if not sqlite_write_lock_free(sqlite_file):
                    return stopped
            os.kill(pid, signal.SIGCONT)
            await trio.sleep(0.002)
