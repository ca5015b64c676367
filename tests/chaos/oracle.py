"""The database-wide oracle: the History Log and the lease as the database itself holds them.

The checker (:mod:`tests.chaos.checker`) judges what the clients saw; this
module judges what the Configuration Database holds at the end of a
schedule, whoever wrote it (pair members, a third master, a duplicate, a
copy started by a supervisor), read out of the database with ``sqlite3`` or
``psql`` by :mod:`tests.chaos.dblog`:

- the History Log's serials are contiguous and unique, from the first one to
  the last, and the serial counter is the last;
- epochs only increase along serials, so each epoch's writes are one
  contiguous run of serials (an epoch split by another is reported as such);
- one writer per epoch across the whole database: every epoch of the History
  Log was taken once (a ``20160`` line in exactly one server's log), by a
  member of the pair; no process outside the pair (a third master, a
  duplicate of an Application) ever took the lease; the lease's epoch is the
  newest;
- every acknowledged write is in the History Log at the serial and epoch the
  client was told, as the object it wrote, and a server that acknowledged a
  write (or that the supervisor showed as primary) at an epoch is the one that
  took that epoch.

Pure: :func:`check_database` takes plain data and returns violations as text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checker import Request

#: The Applications of the pair the chaos systems run (the only ones that may hold the lease).
MEMBERS = frozenset({"confserv", "backup"})


@dataclass(frozen=True)
class HistoryRow:
    """One row of ``cfg_history``: its serial, epoch, and what it changed."""

    serial: int
    epoch: int
    op: str = "add"
    type: str = "DN"
    name: str | None = None  # the object's name, as the change holds it


@dataclass(frozen=True)
class Take:
    """A ``20160 Lease of the database taken at epoch N`` line in one process's log."""

    epoch: int
    holder: str  # the log it is in: a section, or a misconfigured process's label
    forced: bool = False


@dataclass
class DatabaseLog:
    """The Configuration Database at the end of a schedule, and who took which epoch."""

    history: list[HistoryRow] = field(default_factory=list)
    takes: list[Take] = field(default_factory=list)
    lease_epoch: int = 0
    lease_holder: str = ""
    last_serial: int = 0  # cfg_counter's 'serial'
    #: Who may hold the lease; anyone else in ``takes`` is a second writer.
    members: frozenset[str] = MEMBERS
    #: The History Log starts here (1: nothing was trimmed in a chaos run).
    first_serial: int = 1


def _runs(serials: Sequence[int]) -> str:
    """``4-6, 9`` for [4, 5, 6, 9]."""
    parts: list[str] = []
    start = prev = serials[0]
    for s in [*serials[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(parts)


def _serials(db: DatabaseLog) -> list[str]:
    """Contiguous and unique serials from ``first_serial``, ending at the counter."""
    out: list[str] = []
    serials = [r.serial for r in db.history]
    seen = set(serials)
    twice = sorted(s for s, n in Counter(serials).items() if n > 1)
    if twice:
        out.append(f"serials issued twice in the History Log: {_runs(twice)}")
    if not serials:
        if db.last_serial:
            out.append(f"the History Log is empty but the serial counter is {db.last_serial}")
        return out
    last = max(serials)
    missing = sorted(set(range(db.first_serial, last + 1)) - seen)
    if missing:
        out.append(f"the History Log has a gap: serials {_runs(missing)} are missing")
    if min(serials) < db.first_serial:
        out.append(f"the History Log has serial {min(serials)} before {db.first_serial}")
    if db.last_serial != last:
        out.append(f"the serial counter is {db.last_serial} but the History Log ends at {last}")
    return out


def _epochs(db: DatabaseLog) -> list[str]:
    """Epochs only increase along serials; each epoch is one contiguous run."""
    out: list[str] = []
    rows = sorted(db.history, key=lambda r: r.serial)
    for before, row in pairwise(rows):
        if row.epoch < before.epoch:
            out.append(
                f"epochs went back in the History Log: serial {row.serial} is at epoch "
                f"{row.epoch} after serial {before.serial} at epoch {before.epoch}"
            )
    by_epoch: dict[int, list[int]] = {}
    for row in rows:
        by_epoch.setdefault(row.epoch, []).append(row.serial)
    for epoch, serials in sorted(by_epoch.items()):
        lo, hi = serials[0], serials[-1]
        between = sorted({r.epoch for r in rows if lo < r.serial < hi and r.epoch != epoch})
        if between:
            out.append(
                f"epoch {epoch}'s writes are not one run (serials {_runs(serials)}): "
                f"epoch {', '.join(map(str, between))} wrote in between"
            )
    top = max((r.epoch for r in rows), default=0)
    if db.lease_epoch < top:
        out.append(f"the lease is at epoch {db.lease_epoch}, behind the History Log's epoch {top}")
    return out


def holders(db: DatabaseLog) -> dict[int, str]:
    """Which process took each epoch (the first, if a violation made it two)."""
    taken: dict[int, str] = {}
    for t in db.takes:
        taken.setdefault(t.epoch, t.holder)
    return taken


def _writers(db: DatabaseLog) -> list[str]:
    """One writer per epoch, and only pair members ever hold the lease."""
    out: list[str] = []
    by_epoch: dict[int, list[str]] = {}
    for t in db.takes:
        by_epoch.setdefault(t.epoch, []).append(t.holder)
        if t.holder not in db.members:
            out.append(
                f"{t.holder}, which is not a member of the pair, took the lease at epoch {t.epoch}"
            )
    for epoch, who in sorted(by_epoch.items()):
        if len(who) > 1:
            out.append(f"epoch {epoch} was taken {len(who)} times: by {' and '.join(who)}")
    top = max((t.epoch for t in db.takes), default=0)
    if db.lease_epoch < top:
        out.append(f"the lease is at epoch {db.lease_epoch}, behind epoch {top} taken in a log")
    if db.lease_holder and db.lease_holder not in db.members:
        out.append(f"the lease is held by {db.lease_holder}, not a member of the pair")
    taken = holders(db)
    written: dict[int, list[int]] = {}
    for row in db.history:
        if row.epoch > 0:  # epoch 0: cfgctl init, before any server
            written.setdefault(row.epoch, []).append(row.serial)
    for epoch, serials in sorted(written.items()):
        if epoch not in taken:
            out.append(
                f"serials {_runs(sorted(serials))} were written at epoch {epoch}, "
                "which no server's log shows taken"
            )
    return out


def _acknowledged(
    db: DatabaseLog, acked: Iterable[Request], promotions: Iterable[tuple[float, int, str]]
) -> list[str]:
    """Each acknowledged write is in the History Log as told; by the epoch's holder."""
    out: list[str] = []
    rows = {r.serial: r for r in db.history}
    taken = holders(db)
    for r in acked:
        if r.serial is None:
            continue
        row = rows.get(r.serial)
        what = f"acknowledged write {r.key} (serial {r.serial}, epoch {r.epoch})"
        if row is None:
            out.append(f"{what} is not in the History Log")
            continue
        if r.epoch is not None and row.epoch != r.epoch:
            out.append(f"{what}: the History Log has serial {r.serial} at epoch {row.epoch}")
        if r.key is not None and row.name != r.key:
            out.append(f"{what}: the History Log's serial {r.serial} is {row.type} {row.name}")
        holder = taken.get(r.epoch) if r.epoch is not None else None
        if r.server is not None and holder is not None and r.server != holder:
            out.append(f"{what} was acknowledged by {r.server}, but {holder} took epoch {r.epoch}")
    for _t, epoch, server in promotions:
        holder = taken.get(epoch)
        if server in db.members and holder is not None and server != holder:
            out.append(f"{server} was seen primary at epoch {epoch}, which {holder} took")
    return out


def check_database(
    db: DatabaseLog,
    acked: Iterable[Request] = (),
    promotions: Iterable[tuple[float, int, str]] = (),
) -> list[str]:
    """Every violation of the database-wide invariants (see the module docstring)."""
    return _serials(db) + _epochs(db) + _writers(db) + _acknowledged(db, acked, promotions)
