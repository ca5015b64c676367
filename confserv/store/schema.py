"""The schema and identity of a Configuration Database, as plans.

Only ``cfgctl init`` creates a schema (:func:`schema_plan`) or upgrades an
older one (:func:`upgrade_plan`); it also gives the database its identity, a
uuid in ``cfg_meta``. A server only checks (:func:`identity_plan`, read-only)
and refuses a database that is missing, empty, foreign or of another schema
version, with one line naming it and pointing at ``cfgctl init``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confserv.model.objects import OBJECT_TYPES
from confserv.wire.errors import DatabaseIdentityError

from .leases import LEASE_ROW
from .plan import Plan, Query
from .tables import SCHEMA_VERSION

#: A query listing the tables of the database (the current schema on PostgreSQL).
TABLE_LISTS = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    "postgre": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
    "ORDER BY tablename",
}

_OURS = ("cfg_counter", "cfg_history", "cfg_lease", "cfg_object")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a Configuration Database says about itself."""

    uuid: str
    version: int
    last_serial: int
    dbids: Mapping[str, int]
    #: The pair's resumption key, hex (None: made by an older ``cfgctl init``).
    resume_key: str | None = None


def identity_plan(engine: str, where: str) -> Plan:
    """The database's identity; DatabaseIdentityError naming ``where`` when it has none."""
    tables = {str(r[0]) for r in (yield Query(TABLE_LISTS[engine]))}
    init = "run 'cfgctl init' with this server's configuration file"
    if not tables:
        raise DatabaseIdentityError(f"database {where} is empty: {init} to create it")
    if not all(t in tables for t in _OURS):
        shown = ", ".join(sorted(tables)[:5])
        raise DatabaseIdentityError(
            f"database {where} is not a Configuration Database (it holds {shown}): "
            f"point dbname at the right database, or {init} on a new one"
        )
    rows = yield Query("SELECT name, value FROM cfg_counter")
    counters = {str(n): int(v) for n, v in rows}
    version = counters.get("schema", 0)
    if version < SCHEMA_VERSION or "cfg_meta" not in tables:
        raise DatabaseIdentityError(
            f"database {where} has schema version {version}, older than {SCHEMA_VERSION}: "
            f"stop its servers and {init} to upgrade it"
        )
    if version > SCHEMA_VERSION:
        raise DatabaseIdentityError(
            f"database {where} has schema version {version}, newer than this server's "
            f"{SCHEMA_VERSION}: upgrade the server"
        )
    rows = yield Query("SELECT name, value FROM cfg_meta WHERE name IN ('uuid', 'resume-key')")
    meta = {str(n): str(v) for n, v in rows}
    if "uuid" not in meta:
        raise DatabaseIdentityError(f"database {where} has no identity: {init}")
    dbids = {k.removeprefix("dbid:"): v for k, v in counters.items() if k.startswith("dbid:")}
    return Identity(meta["uuid"], version, counters.get("serial", 0), dbids, meta.get("resume-key"))


def table_names_plan(engine: str) -> Plan:
    """The names of the database's tables."""
    return {str(r[0]) for r in (yield Query(TABLE_LISTS[engine]))}


def schema_plan(statements: Sequence[str]) -> Plan:
    """Create tables, counters, the lease row and the identity if they do not exist."""
    for sql in statements:
        yield Query(sql)
    names = ["serial", *(f"dbid:{t}" for t in OBJECT_TYPES)]
    for name in names:
        yield Query(
            "INSERT INTO cfg_counter (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
    yield Query(
        "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
        "VALUES (?, 0, '', '', 0, '') ON CONFLICT (name) DO NOTHING",
        (LEASE_ROW,),
    )
    yield Query(
        "INSERT INTO cfg_meta (name, value) VALUES ('uuid', ?) ON CONFLICT (name) DO NOTHING",
        (str(uuid.uuid4()),),
    )
    # The pair's resumption key (docs/protocol.md 10.20): never sent to a client.
    yield Query(
        "INSERT INTO cfg_meta (name, value) VALUES ('resume-key', ?) ON CONFLICT (name) DO NOTHING",
        (secrets.token_hex(32),),
    )
    yield Query(
        "INSERT INTO cfg_counter (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO NOTHING",
        (SCHEMA_VERSION,),
    )


def upgrade_plan(meta_ddl: Sequence[str]) -> Plan:
    """Schema 1 to 2: one lease for the whole database (at the highest epoch any pair
    reached, so epochs only increase), holders with instances, and an identity.

    Refused while any version-1 lease is valid: stop the servers first.
    """
    rows = yield Query("SELECT pair, holder, expires_at > {now} FROM cfg_lease")
    held = [str(p) for p, holder, valid in rows if holder and valid]
    if held:
        raise DatabaseIdentityError(
            f"cannot upgrade while a server holds the lease of pair {held[0]!r}: "
            "stop the servers, then run 'cfgctl init' again"
        )
    rows = yield Query("SELECT COALESCE(MAX(epoch), 0) FROM cfg_lease")
    epoch = int(rows[0][0])
    yield Query("DELETE FROM cfg_lease")
    yield Query("ALTER TABLE cfg_lease RENAME COLUMN pair TO name")
    yield Query("ALTER TABLE cfg_lease ADD COLUMN instance TEXT NOT NULL DEFAULT ''")
    yield Query(
        "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
        "VALUES (?, ?, '', '', 0, '')",
        (LEASE_ROW, epoch),
    )
    for sql in meta_ddl:
        yield Query(sql)
    yield Query(
        "INSERT INTO cfg_meta (name, value) VALUES ('uuid', ?) ON CONFLICT (name) DO NOTHING",
        (str(uuid.uuid4()),),
    )
    # The pair's resumption key (docs/protocol.md 10.20): never sent to a client.
    yield Query(
        "INSERT INTO cfg_meta (name, value) VALUES ('resume-key', ?) ON CONFLICT (name) DO NOTHING",
        (secrets.token_hex(32),),
    )
    yield Query("UPDATE cfg_counter SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))
    return epoch


def raise_counters_plan(serial: int, dbids: Mapping[str, int], epoch: int) -> Plan:
    """After an operator reload over a database that went back: never issue a serial,
    a dbid or an epoch twice (each counter becomes at least what was served)."""
    yield Query(
        "UPDATE cfg_counter SET value = ? WHERE name = 'serial' AND value < ?", (serial, serial)
    )
    for type_name, dbid in sorted(dbids.items()):
        yield Query(
            "UPDATE cfg_counter SET value = ? WHERE name = ? AND value < ?",
            (dbid, f"dbid:{type_name}", dbid),
        )
    yield Query(
        "UPDATE cfg_lease SET epoch = ? WHERE name = ? AND epoch < ?", (epoch, LEASE_ROW, epoch)
    )
