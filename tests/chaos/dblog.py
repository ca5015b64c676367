"""Read the Configuration Database and the servers' logs for :mod:`tests.chaos.oracle`.

The History Log, the lease row and the serial counter are read in one
snapshot straight from the database (``sqlite3`` on the file, ``psql`` as the
test cluster's superuser), never through a server. Who took which epoch comes
from the ``20160`` lines of each process's log (one file per section for the
supervised servers, one per misconfigured process): the line is written, and
flushed, after the take commits and before the holder's first write in that
epoch, so every epoch with writes has its line.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from .oracle import MEMBERS, DatabaseLog, HistoryRow, Take

#: ``10:16:08.825 Std 20160 Lease of the database taken at epoch 1 (ttl 2 s, forced)``
TAKE = re.compile(r" 20160 Lease of the database taken at epoch (\d+) \(ttl [^,)]*(, forced)?\)")


def read_takes(logs: Mapping[str, Path]) -> list[Take]:
    """Every take in the logs, labelled by the log's holder (in each log's order)."""
    takes: list[Take] = []
    for holder, path in logs.items():
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = TAKE.search(line)
            if m:
                takes.append(Take(int(m.group(1)), holder, forced=bool(m.group(2))))
    return takes


def _name(change: str) -> str | None:
    try:
        data: Any = json.loads(change)
    except ValueError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name is not None else None


def read_sqlite(path: Path) -> DatabaseLog:
    """The History Log, lease and counter of a SQLite file, in one read transaction."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("BEGIN")
        history = [
            HistoryRow(int(s), int(e), str(o), str(t), _name(str(c)))
            for s, e, o, t, c in conn.execute(
                "SELECT serial, epoch, op, type, change FROM cfg_history ORDER BY serial"
            )
        ]
        lease = conn.execute(
            "SELECT epoch, holder FROM cfg_lease WHERE name = 'database'"
        ).fetchone()
        counter = conn.execute("SELECT value FROM cfg_counter WHERE name = 'serial'").fetchone()
        conn.execute("COMMIT")
    finally:
        conn.close()
    epoch, holder = lease if lease is not None else (0, "")
    return DatabaseLog(
        history, [], int(epoch), str(holder), int(counter[0]) if counter is not None else 0
    )


#: One statement, so one snapshot: the whole state as one JSON value.
_PG_SNAPSHOT = """SELECT json_build_object(
  'history', (SELECT COALESCE(json_agg(json_build_array(serial, epoch, op, type,
               change::json->>'name') ORDER BY serial), '[]'::json) FROM cfg_history),
  'lease', (SELECT json_build_array(epoch, holder) FROM cfg_lease WHERE name = 'database'),
  'serial', (SELECT value FROM cfg_counter WHERE name = 'serial'));
"""


def read_postgre(cluster: Any, dbname: str) -> DatabaseLog:
    """The same from PostgreSQL, through the test cluster's ``psql`` (superuser, unix socket)."""
    state = json.loads(cluster.psql(_PG_SNAPSHOT, dbname=dbname))
    history = [HistoryRow(int(s), int(e), o, t, n) for s, e, o, t, n in state["history"]]
    epoch, holder = state["lease"] or (0, "")
    return DatabaseLog(history, [], int(epoch), str(holder), int(state["serial"] or 0))


async def read_database(
    sqlite_file: Path,
    cluster: Any,
    dbname: str,
    logs: Mapping[str, Path],
    members: frozenset[str] = MEMBERS,
) -> DatabaseLog:
    """The database (``cluster``'s ``dbname`` on PostgreSQL, else ``sqlite_file``) and
    the takes in ``logs`` (holder -> log file), for the oracle."""
    if cluster is None:
        db = await trio.to_thread.run_sync(read_sqlite, sqlite_file)
    else:
        db = await trio.to_thread.run_sync(read_postgre, cluster, dbname)
    db.takes = read_takes(logs)
    db.members = members
    return db


def save(db: DatabaseLog, path: Path) -> None:
    """Write what the oracle read, for a post-mortem (a PostgreSQL database is not kept)."""
    state = {
        "lease": [db.lease_epoch, db.lease_holder],
        "serial": db.last_serial,
        "takes": [[t.epoch, t.holder, t.forced] for t in db.takes],
        "history": [[r.serial, r.epoch, r.op, r.type, r.name] for r in db.history],
    }
    path.write_text(json.dumps(state))
