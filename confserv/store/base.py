"""The Configuration Database interface, its records, and its write transactions as plans.

Transactions are plans (:mod:`confserv.store.plan`): written once, run by the SQLite
store and by the PostgreSQL store. The lease, claim and supervisor-lease plans live in
:mod:`confserv.store.leases`, the schema and identity plans in
:mod:`confserv.store.schema`; the write path is here. Every write checks, in
its own transaction, that the lease's epoch is the writer's (a deposed primary
cannot commit) and that the database's last serial is the one the writer's
memory is at (stale memory cannot overwrite a newer row); an update is applied
as a delta to the *stored* row, never written whole from memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from confserv.model.objects import apply_delta
from confserv.wire.errors import FencedError, NotFoundError, StaleMemoryError

from .leases import (
    LEASE_ROW,
    Holder,
    Lease,
    acquire_lease_plan,
    acquire_supervisor_lease_plan,
    announce_supervisor_plan,
    claim_plan,
    list_supervisors_plan,
    read_lease_plan,
    read_supervisor_lease_plan,
    release_claim_plan,
    release_lease_plan,
    release_supervisor_lease_plan,
    renew_claim_plan,
    renew_lease_plan,
    renew_supervisor_lease_plan,
    withdraw_supervisor_plan,
)
from .plan import Plan, Query, Row, Rows
from .schema import (
    Identity,
    identity_plan,
    raise_counters_plan,
    schema_plan,
    table_names_plan,
    upgrade_plan,
)

__all__ = [
    "Change",
    "ConfigStore",
    "Holder",
    "Identity",
    "Lease",
    "Plan",
    "PlanStore",
    "Query",
    "Row",
    "Rows",
    "Snapshot",
    "Write",
]

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
class Snapshot:
    """Everything a server loads at start: all objects and the last serial."""

    objects: list[dict[str, Any]]
    last_serial: int


class ConfigStore(Protocol):
    """What a Configuration Server needs of its database (SQLite or PostgreSQL)."""

    engine: str
    #: How the database is named in messages (the file, or host:port/dbname).
    where: str

    async def create_schema(self) -> bool:
        """``cfgctl init``: create (or upgrade) the schema and identity; True if it did."""

    async def identity(self) -> Identity:
        """The database's identity; DatabaseIdentityError when it is not a usable one."""

    async def load(self) -> Snapshot:
        """Read every object and the last serial."""

    async def commit(self, epoch: int, serial: int, write: Write) -> Change:
        """Commit ``write`` if ``epoch`` is the lease's and ``serial`` the last serial;
        else FencedError or StaleMemoryError."""

    async def history_since(self, serial: int, limit: int) -> list[Change] | None:
        """Changes after ``serial`` in order; None when the history does not reach back
        that far or more than ``limit`` changes were missed."""

    async def trim_history(self, max_age: float) -> int:
        """Delete history older than ``max_age`` seconds (always keeping the newest record)."""

    async def read_lease(self) -> Lease | None:
        """The database's lease."""

    async def acquire_lease(
        self,
        holder: Holder,
        ttl: float,
        *,
        force: bool,
        address: str = "",
        over: int | None = None,
    ) -> Lease:
        """Take the lease, raising the epoch; LeaseHeldError when another process holds it.

        ``address`` (``host:port:management-port``) tells backups and clients
        where the new primary serves; ``over``: a forced take overrides only the
        lease at that epoch (see :func:`~confserv.store.leases.acquire_lease_plan`)."""

    async def renew_lease(self, holder: Holder, epoch: int, ttl: float) -> Lease:
        """Extend our lease; FencedError when it is no longer ours at that epoch."""

    async def release_lease(self, holder: Holder, epoch: int) -> None:
        """Give up our lease at once (a planned hand-over)."""

    async def claim(self, holder: Holder, ttl: float) -> Lease:
        """Claim the Application for this process; InstanceClaimedError if another runs."""

    async def renew_claim(self, holder: Holder, ttl: float) -> Lease:
        """Extend the claim; ClaimLostError when another process took it."""

    async def release_claim(self, holder: Holder) -> None:
        """Give the claim up (clean stop)."""

    async def read_supervisor_lease(self) -> Lease | None:
        """The supervisor lease (None before any supervisor took it)."""

    async def acquire_supervisor_lease(self, holder: Holder, ttl: float, address: str) -> Lease:
        """Become the active supervisor, raising the supervisor epoch: only when that lease
        is expired, unheld or this process's; SupervisorLeaseHeldError when another holds
        it. ``address`` (``host:control-port``) says where the active one answers."""

    async def renew_supervisor_lease(self, holder: Holder, epoch: int, ttl: float) -> Lease:
        """Extend our supervisor lease; SupervisorFencedError when it is no longer ours at
        that epoch."""

    async def release_supervisor_lease(self, holder: Holder, epoch: int) -> None:
        """Give up our supervisor lease at once (a clean stop)."""

    async def announce_supervisor(self, holder: Holder, ttl: float, address: str) -> Lease:
        """This supervisor process lives for ``ttl`` s more (row ``scs:<name>``);
        SupervisorNameTakenError while another live process has its name."""

    async def list_supervisors(self) -> list[Lease]:
        """The supervisors that announced themselves and have not lapsed."""

    async def withdraw_supervisor(self, holder: Holder) -> None:
        """This supervisor process stops: its presence lapses at once."""

    async def raise_counters(self, serial: int, dbids: Mapping[str, int], epoch: int) -> None:
        """Make every counter at least what was served (after a database went back)."""

    async def aclose(self) -> None:
        """Close the connection(s)."""


# -- plans ---------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def load_plan() -> Plan:
    """Read the last serial and every object, as stored (JSON text), in one snapshot.

    The objects are decoded by :meth:`ConfigStore.load` once the transaction is
    over: decoding 100,000 objects between two statements left the transaction
    idle for over a second, and PostgreSQL's ``idle_in_transaction_session_timeout``
    ended it (found by make chaos, PostgreSQL, first seed 177778: a server
    restarted beside 111,000 objects crash-looped). The serial is read first and
    the objects last, so nothing is done inside the transaction after its last
    statement.
    """
    serial = yield Query("SELECT value FROM cfg_counter WHERE name = 'serial'")
    rows = yield Query("SELECT data FROM cfg_object")
    return int(serial[0][0]) if serial else 0, [r[0] for r in rows]


def decode_snapshot(loaded: tuple[int, list[str]]) -> Snapshot:
    """The :class:`Snapshot` of what :func:`load_plan` read."""
    serial, raw = loaded
    return Snapshot(objects=[json.loads(data) for data in raw], last_serial=serial)


def _bump(name: str) -> Plan:
    rows = yield Query(
        "UPDATE cfg_counter SET value = value + 1 WHERE name = ? RETURNING value", (name,)
    )
    return int(rows[0][0])


def commit_plan(epoch: int, serial: int, write: Write) -> Plan:
    """The one write path: check the epoch and the last serial, assign serial (and
    dbid), write (an update as a delta to the stored row), log history."""
    rows = yield Query("SELECT epoch FROM cfg_lease WHERE name = ?", (LEASE_ROW,), lock=True)
    current = int(rows[0][0]) if rows else 0
    if current != epoch:
        raise FencedError(f"write refused: epoch {epoch} is not the lease's epoch {current}")
    rows = yield Query("SELECT value FROM cfg_counter WHERE name = 'serial'")
    last = int(rows[0][0]) if rows else 0
    if last != serial:
        raise StaleMemoryError(
            f"write refused: the database is at serial {last}, this server's memory at {serial}",
            database_serial=last,
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
        rows = yield Query(
            "SELECT data FROM cfg_object WHERE type = ? AND dbid = ?", (write.type, dbid), lock=True
        )
        if not rows:
            raise NotFoundError(f"no {write.type} with dbid {dbid} in the database")
        stored = json.loads(rows[0][0])
        apply_delta(stored, data.get("delta", {}), data.get("options", {}))
        yield Query(
            "UPDATE cfg_object SET name = ?, data = ? WHERE type = ? AND dbid = ?",
            (stored["name"], _json(stored), write.type, dbid),
        )
    else:
        rows = yield Query(
            "DELETE FROM cfg_object WHERE type = ? AND dbid = ? RETURNING dbid", (write.type, dbid)
        )
        if not rows:
            raise NotFoundError(f"no {write.type} with dbid {dbid} in the database")
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


class PlanStore:
    """The :class:`ConfigStore` operations, each one plan; a subclass runs plans.

    Subclasses give ``engine``, ``where`` and ``_run(plan, write=...)``
    (``write=False``: the plan only reads). Written once here so the two
    engines cannot drift.
    """

    engine: str
    where: str

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        raise NotImplementedError

    async def create_schema(self) -> bool:
        """Create the schema (or upgrade a version-1 one); False when it was complete."""
        from .tables import CfgMeta, ddl

        tables: set[str] = await self._run(table_names_plan(self.engine), write=False)
        if "cfg_counter" in tables and "cfg_meta" in tables:
            await self._run(schema_plan(ddl(self.engine)))  # fills in anything missing
            return False
        if "cfg_counter" in tables:
            await self._run(upgrade_plan(ddl(self.engine, only=(CfgMeta,))))
            return True
        await self._run(schema_plan(ddl(self.engine)))
        return True

    async def identity(self) -> Identity:
        """The database's identity (read-only)."""
        ident: Identity = await self._run(identity_plan(self.engine, self.where), write=False)
        return ident

    async def load(self) -> Snapshot:
        """Read every object and the last serial."""
        loaded: tuple[int, list[str]] = await self._run(load_plan(), write=False)
        return decode_snapshot(loaded)

    async def commit(self, epoch: int, serial: int, write: Write) -> Change:
        """Commit ``write`` under the epoch and serial checks."""
        change: Change = await self._run(commit_plan(epoch, serial, write))
        return change

    async def history_since(self, serial: int, limit: int) -> list[Change] | None:
        """Changes after ``serial``, or None when they cannot all be given."""
        result: list[Change] | None = await self._run(history_plan(serial, limit), write=False)
        return result

    async def trim_history(self, max_age: float) -> int:
        """Delete history older than ``max_age`` seconds."""
        count: int = await self._run(trim_plan(max_age))
        return count

    async def read_lease(self) -> Lease | None:
        """The database's lease."""
        lease: Lease | None = await self._run(read_lease_plan(), write=False)
        return lease

    async def acquire_lease(
        self,
        holder: Holder,
        ttl: float,
        *,
        force: bool,
        address: str = "",
        over: int | None = None,
    ) -> Lease:
        """Take the lease, raising the epoch, and publish where we serve."""
        lease: Lease = await self._run(acquire_lease_plan(holder, ttl, force, address, over))
        return lease

    async def renew_lease(self, holder: Holder, epoch: int, ttl: float) -> Lease:
        """Extend our lease."""
        lease: Lease = await self._run(renew_lease_plan(holder, epoch, ttl))
        return lease

    async def release_lease(self, holder: Holder, epoch: int) -> None:
        """Give up our lease."""
        await self._run(release_lease_plan(holder, epoch))

    async def claim(self, holder: Holder, ttl: float) -> Lease:
        """Claim the Application for this process."""
        lease: Lease = await self._run(claim_plan(holder, ttl))
        return lease

    async def renew_claim(self, holder: Holder, ttl: float) -> Lease:
        """Extend this process's claim."""
        lease: Lease = await self._run(renew_claim_plan(holder, ttl))
        return lease

    async def release_claim(self, holder: Holder) -> None:
        """Give the claim up."""
        await self._run(release_claim_plan(holder))

    async def read_supervisor_lease(self) -> Lease | None:
        """The supervisor lease."""
        lease: Lease | None = await self._run(read_supervisor_lease_plan(), write=False)
        return lease

    async def acquire_supervisor_lease(self, holder: Holder, ttl: float, address: str) -> Lease:
        """Become the active supervisor, raising the supervisor epoch."""
        lease: Lease = await self._run(acquire_supervisor_lease_plan(holder, ttl, address))
        return lease

    async def renew_supervisor_lease(self, holder: Holder, epoch: int, ttl: float) -> Lease:
        """Extend our supervisor lease."""
        lease: Lease = await self._run(renew_supervisor_lease_plan(holder, epoch, ttl))
        return lease

    async def release_supervisor_lease(self, holder: Holder, epoch: int) -> None:
        """Give up our supervisor lease."""
        await self._run(release_supervisor_lease_plan(holder, epoch))

    async def announce_supervisor(self, holder: Holder, ttl: float, address: str) -> Lease:
        """This supervisor lives for ``ttl`` s more."""
        lease: Lease = await self._run(announce_supervisor_plan(holder, ttl, address))
        return lease

    async def list_supervisors(self) -> list[Lease]:
        """The live supervisors."""
        found: list[Lease] = await self._run(list_supervisors_plan(), write=False)
        return found

    async def withdraw_supervisor(self, holder: Holder) -> None:
        """This supervisor stops."""
        await self._run(withdraw_supervisor_plan(holder))

    async def raise_counters(self, serial: int, dbids: Mapping[str, int], epoch: int) -> None:
        """Make every counter at least what was served."""
        await self._run(raise_counters_plan(serial, dbids, epoch))
