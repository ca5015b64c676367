"""The Configuration Database interface, its records, and its transactions as plans.

Every transaction is written once, as a *plan*: a generator that yields
:class:`Query` values and receives their rows. Each store runs plans with its
own driver (``sqlite3`` in a worker thread, asyncpg through trio-asyncio), so
the fencing logic (the epoch check in every write) exists in exactly one place
for both engines. Plans never read a clock: times come from the database
(``{now}`` in the SQL) so that every server of a pair judges the lease by the
same clock.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .errors import FencedError, LeaseHeldError
from .models import SCHEMA_VERSION
from .objects import OBJECT_TYPES

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

ChangeOp = Literal["add", "change", "delete"]


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, as kept in the History Log and sent to subscribers.

    ``data`` is the whole object for ``add``, ``{"delta": ..., "options": ...}``
    for ``change`` and ``{"name": ...}`` for ``delete``.
    """

    serial: int
    epoch: int
    op: ChangeOp
    type: str
    dbid: int
    data: dict[str, Any]
    time: float

    def to_wire(self) -> dict[str, Any]:
        """The change as a msgpack/JSON map."""
        return {
            "serial": self.serial,
            "epoch": self.epoch,
            "op": self.op,
            "type": self.type,
            "dbid": self.dbid,
            "data": self.data,
            "time": self.time,
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> Change:
        """Inverse of :meth:`to_wire`."""
        return cls(
            serial=int(value["serial"]),
            epoch=int(value["epoch"]),
            op=value["op"],
            type=str(value["type"]),
            dbid=int(value["dbid"]),
            data=dict(value["data"]),
            time=float(value["time"]),
        )


@dataclass(frozen=True, slots=True)
class Write:
    """A change to commit. ``dbid`` is None for ``add`` (the store assigns one).

    ``obj`` is the whole object after the change (None for ``delete``);
    ``data`` is what the History Log keeps (see :class:`Change`).
    """

    op: ChangeOp
    type: str
    dbid: int | None
    obj: dict[str, Any] | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lease:
    """A pair's lease as the database has it, with the database clock's ``now``."""

    pair: str
    epoch: int
    holder: str
    expires_at: float
    now: float
    address: str = ""

    @property
    def valid(self) -> bool:
        """Whether an unexpired holder exists."""
        return bool(self.holder) and self.expires_at > self.now

    @property
    def remaining(self) -> float:
        """Seconds until expiry by the database clock (negative when expired)."""
        return self.expires_at - self.now


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a server loads at start: all objects and the last serial."""

    objects: list[dict[str, Any]]
    last_serial: int


class ConfigStore(Protocol):
    """What a Configuration Server needs of its database (SQLite or PostgreSQL)."""

    engine: str

    async def create_schema(self) -> None:
        """Create the tables and counters if missing. Idempotent."""

    async def load(self) -> Snapshot:
        """Read every object and the last serial."""

    async def commit(self, pair: str, epoch: int, write: Write) -> Change:
        """Commit ``write`` if ``epoch`` is the pair's lease epoch; else raise FencedError."""

    async def history_since(self, serial: int, limit: int) -> list[Change] | None:
        """Changes after ``serial`` in order; None when the history does not reach back
        that far or more than ``limit`` changes were missed."""

    async def trim_history(self, max_age: float) -> int:
        """Delete history older than ``max_age`` seconds (always keeping the newest record)."""

    async def read_lease(self, pair: str) -> Lease | None:
        """The pair's lease, or None when no server ever took it."""

    async def init_lease(self, pair: str) -> None:
        """Create the pair's lease row at epoch 0 with no holder, if missing."""

    async def acquire_lease(
        self, pair: str, holder: str, ttl: float, *, force: bool, address: str = ""
    ) -> Lease:
        """Take the lease, raising the epoch; LeaseHeldError when held by another.

        ``address`` (``host:port:management-port``) tells backups and clients
        where the new primary serves."""

    async def renew_lease(self, pair: str, holder: str, epoch: int, ttl: float) -> Lease:
        """Extend our lease; FencedError when it is no longer ours at that epoch."""

    async def release_lease(self, pair: str, holder: str, epoch: int) -> None:
        """Give up our lease at once (a planned hand-over)."""

    async def aclose(self) -> None:
        """Close the connection(s)."""


# -- plans ---------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


#: A query with a row when the counter table exists, per engine.
SCHEMA_PROBES = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cfg_counter'",
    "postgre": "SELECT 1 WHERE to_regclass('cfg_counter') IS NOT NULL",
}


def schema_done_plan(probe: str) -> Plan:
    """Whether the schema is complete (its ``schema`` counter is written last); reads only."""
    exists = yield Query(probe)
    if not exists:
        return False
    return bool((yield Query("SELECT value FROM cfg_counter WHERE name = 'schema'")))


def schema_plan(statements: Sequence[str]) -> Plan:
    """Create tables and counters if they do not exist."""
    for sql in statements:
        yield Query(sql)
    names = ["serial", *(f"dbid:{t}" for t in OBJECT_TYPES)]
    for name in names:
        yield Query(
            "INSERT INTO cfg_counter (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
    yield Query(
        "INSERT INTO cfg_counter (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO NOTHING",
        (SCHEMA_VERSION,),
    )


def load_plan() -> Plan:
    """Read every object and the last serial."""
    rows = yield Query("SELECT data FROM cfg_object")
    objects = [json.loads(r[0]) for r in rows]
    serial = yield Query("SELECT value FROM cfg_counter WHERE name = 'serial'")
    return Snapshot(objects=objects, last_serial=int(serial[0][0]) if serial else 0)


def _bump(name: str) -> Plan:
    rows = yield Query(
        "UPDATE cfg_counter SET value = value + 1 WHERE name = ? RETURNING value", (name,)
    )
    return int(rows[0][0])


def commit_plan(pair: str, epoch: int, write: Write) -> Plan:
    """The one write path: check the epoch, assign serial (and dbid), write, log history."""
    rows = yield Query("SELECT epoch FROM cfg_lease WHERE pair = ?", (pair,), lock=True)
    current = int(rows[0][0]) if rows else 0
    if current != epoch:
        raise FencedError(
            f"write refused: epoch {epoch} is not the lease's epoch {current} for pair {pair!r}"
        )
    serial = yield from _bump("serial")
    dbid = write.dbid
    data = write.data
    if write.op == "add":
        dbid = yield from _bump(f"dbid:{write.type}")
        assert write.obj is not None
        obj = {**write.obj, "dbid": dbid}
        data = obj
        yield Query(
            "INSERT INTO cfg_object (type, dbid, name, data) VALUES (?, ?, ?, ?)",
            (write.type, dbid, obj["name"], _json(obj)),
        )
    elif write.op == "change":
        assert write.obj is not None
        yield Query(
            "UPDATE cfg_object SET name = ?, data = ? WHERE type = ? AND dbid = ?",
            (write.obj["name"], _json(write.obj), write.type, dbid),
        )
    else:
        yield Query("DELETE FROM cfg_object WHERE type = ? AND dbid = ?", (write.type, dbid))
    assert dbid is not None
    rows = yield Query(
        "INSERT INTO cfg_history (serial, epoch, op, type, dbid, change, time) "
        "VALUES (?, ?, ?, ?, ?, ?, {now}) RETURNING time",
        (serial, epoch, write.op, write.type, dbid, _json(data)),
    )
    return Change(serial, epoch, write.op, write.type, dbid, data, float(rows[0][0]))


def history_plan(serial: int, limit: int) -> Plan:
    """Changes after ``serial``, or None when they cannot all be given."""
    rows = yield Query("SELECT value FROM cfg_counter WHERE name = 'serial'")
    last = int(rows[0][0]) if rows else 0
    if serial >= last:
        return []
    if last - serial > limit:
        return None
    rows = yield Query(
        "SELECT serial, epoch, op, type, dbid, change, time FROM cfg_history "
        "WHERE serial > ? AND serial <= ? ORDER BY serial",
        (serial, last),  # bounded: under READ COMMITTED a commit may land between the reads
    )
    if not rows or int(rows[0][0]) != serial + 1 or len(rows) != last - serial:
        return None
    return [
        Change(int(s), int(e), o, t, int(d), json.loads(c), float(tm))
        for s, e, o, t, d, c, tm in rows
    ]


def trim_plan(max_age: float) -> Plan:
    """Delete history older than ``max_age`` seconds, keeping the newest record."""
    rows = yield Query(
        "DELETE FROM cfg_history WHERE time < {now} - ? "
        "AND serial < (SELECT MAX(serial) FROM cfg_history) RETURNING serial",
        (max_age,),
    )
    return len(rows)


def _lease_row(pair: str, rows: Rows) -> Lease | None:
    if not rows:
        return None
    epoch, holder, expires_at, now, address = rows[0]
    return Lease(pair, int(epoch), str(holder), float(expires_at), float(now), str(address))


_LEASE_COLUMNS = "epoch, holder, expires_at, {now}, address"
_LEASE_SELECT = f"SELECT {_LEASE_COLUMNS} FROM cfg_lease WHERE pair = ?"


def read_lease_plan(pair: str) -> Plan:
    """The pair's lease."""
    rows = yield Query(_LEASE_SELECT, (pair,))
    return _lease_row(pair, rows)


def acquire_lease_plan(pair: str, holder: str, ttl: float, force: bool, address: str) -> Plan:
    """Take the lease (expired, ours, unheld, or forced), raising the epoch by one."""
    rows = yield Query(_LEASE_SELECT, (pair,), lock=True)
    lease = _lease_row(pair, rows)
    if lease is None:
        rows = yield Query(
            "INSERT INTO cfg_lease (pair, epoch, holder, expires_at, address) "
            f"VALUES (?, 1, ?, {{now}} + ?, ?) RETURNING {_LEASE_COLUMNS}",
            (pair, holder, ttl, address),
        )
    else:
        if lease.valid and lease.holder != holder and not force:
            raise LeaseHeldError(
                f"lease of pair {pair!r} is held by {lease.holder!r} at epoch {lease.epoch} "
                f"for {lease.remaining:.3f} s more",
                holder=lease.holder,
                epoch=lease.epoch,
            )
        rows = yield Query(
            "UPDATE cfg_lease SET epoch = epoch + 1, holder = ?, expires_at = {now} + ?, "
            f"address = ? WHERE pair = ? RETURNING {_LEASE_COLUMNS}",
            (holder, ttl, address, pair),
        )
    acquired = _lease_row(pair, rows)
    assert acquired is not None
    return acquired


def renew_lease_plan(pair: str, holder: str, epoch: int, ttl: float) -> Plan:
    """Extend the lease if it is still ours at ``epoch``."""
    rows = yield Query(
        "UPDATE cfg_lease SET expires_at = {now} + ? WHERE pair = ? AND holder = ? AND epoch = ? "
        f"RETURNING {_LEASE_COLUMNS}",
        (ttl, pair, holder, epoch),
    )
    lease = _lease_row(pair, rows)
    if lease is None:
        raise FencedError(
            f"lease of pair {pair!r} is no longer held by {holder!r} at epoch {epoch}"
        )
    return lease


def release_lease_plan(pair: str, holder: str, epoch: int) -> Plan:
    """Give the lease up if it is ours at ``epoch`` (no error when it is not)."""
    yield Query(
        "UPDATE cfg_lease SET holder = '', expires_at = {now} "
        "WHERE pair = ? AND holder = ? AND epoch = ?",
        (pair, holder, epoch),
    )


def init_lease_plan(pair: str) -> Plan:
    """Create the pair's lease row at epoch 0 with no holder, if it does not exist."""
    yield Query(
        "INSERT INTO cfg_lease (pair, epoch, holder, expires_at, address) VALUES (?, 0, '', 0, '') "
        "ON CONFLICT (pair) DO NOTHING",
        (pair,),
    )


class PlanStore:
    """The :class:`ConfigStore` operations, each one plan; a subclass runs plans.

    Subclasses give ``engine`` and ``_run(plan, write=...)`` (``write=False``:
    the plan only reads). Written once here so the two engines cannot drift.
    """

    engine: str

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        raise NotImplementedError

    async def create_schema(self) -> None:
        """Create the tables and counters if missing."""
        from .models import ddl

        # A complete schema is left alone: CREATE ... IF NOT EXISTS still locks
        # the tables, and on PostgreSQL a server starting beside a primary that
        # writes then deadlocked with it, crashed, and did so at every restart.
        if await self._run(schema_done_plan(SCHEMA_PROBES[self.engine]), write=False):
            return
        await self._run(schema_plan(ddl(self.engine)))

    async def load(self) -> Snapshot:
        """Read every object and the last serial."""
        snapshot: Snapshot = await self._run(load_plan(), write=False)
        return snapshot

    async def commit(self, pair: str, epoch: int, write: Write) -> Change:
        """Commit ``write`` under the epoch check."""
        change: Change = await self._run(commit_plan(pair, epoch, write))
        return change

    async def history_since(self, serial: int, limit: int) -> list[Change] | None:
        """Changes after ``serial``, or None when they cannot all be given."""
        result: list[Change] | None = await self._run(history_plan(serial, limit), write=False)
        return result

    async def trim_history(self, max_age: float) -> int:
        """Delete history older than ``max_age`` seconds."""
        count: int = await self._run(trim_plan(max_age))
        return count

    async def read_lease(self, pair: str) -> Lease | None:
        """The pair's lease."""
        lease: Lease | None = await self._run(read_lease_plan(pair), write=False)
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
