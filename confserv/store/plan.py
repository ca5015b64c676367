"""Transactions as plans: generators that yield SQL queries and receive their rows.

Every transaction is written once, as a *plan*: a generator that yields
:class:`Query` values and receives their rows. Each store runs plans with its
own driver (``sqlite3`` in a worker thread, asyncpg through trio-asyncio), so
the logic of a transaction (the epoch and serial checks of every write) exists
in exactly one place for both engines. Plans never read a clock: times come
from the database (``{now}`` in the SQL), so every server judges the lease by
the same clock.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]
Rows = list[Row]


@dataclass(frozen=True, slots=True)
class Query:
    """One SQL statement: ``?`` placeholders, ``{now}`` for the database clock in seconds.

    ``lock`` asks the engine to lock the selected rows for the transaction
    (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds
    the database's write lock).
    """

    sql: str
    params: tuple[Any, ...] = ()
    lock: bool = False


Plan = Generator[Query, Rows, Any]
