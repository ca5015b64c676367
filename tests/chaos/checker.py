"""The checker shared by the simulation and the real-process runs.

It reads a :class:`Record` of what happened and returns every violation of
the design's invariants, as text (an empty list means the run was clean):

0. every request is answered (liveness: a client never waits forever), and
   writes are acknowledged again once the system is healthy after the faults;
1. no acknowledged write is missing afterwards;
2. never two servers accept writes in one epoch; epochs only increase;
3. no client sees serials go back;
4. a fault shorter than the detection bound causes no failover;
5. a misconfigured process (a third master, a second process of an
   Application) exits 2 with one line, and the primary keeps its epoch;
6. when the record holds the database itself (real runs), the database-wide
   oracle of :mod:`tests.chaos.oracle`: the History Log's serials contiguous,
   epochs only increasing, one writer per epoch, every acknowledged write
   there as told.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .oracle import DatabaseLog, check_database


@dataclass
class Request:
    """One client request: when, what came of it, at which serial and epoch."""

    client: str
    op: str
    start: float
    end: float
    outcome: str  # ok | error | unknown | hung (no answer within the harness's deadline)
    serial: int | None = None
    epoch: int | None = None
    server: str | None = None
    key: str | None = None


@dataclass
class Fault:
    """One injected fault and its duration (0 for a kill).

    ``bound``: a fault of this kind shorter than it must cause no failover;
    None means the record's detection bound for pauses and partitions, and
    no such rule for other kinds (a kill is meant to cause one).
    """

    kind: str
    target: str
    start: float
    duration: float
    bound: float | None = None


@dataclass
class Misconfig:
    """A misconfigured process the harness started, and what came of it.

    ``exit_code`` None: it was still running at the harness's deadline (then
    killed). ``epoch_before``/``epoch_after``: the primary's epoch when it was
    started and once it had exited (a duplicate must not move it).
    """

    kind: str  # third-master | duplicate-start
    name: str  # the process as the checker names it (its log's label)
    start: float
    end: float
    exit_code: int | None
    line: str = ""  # its one 'confserv: ...' line
    epoch_before: int | None = None
    epoch_after: int | None = None


@dataclass
class Record:
    """Everything a schedule produced."""

    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    promotions: list[tuple[float, int, str]] = field(default_factory=list)  # (time, epoch, server)
    committed: set[str] = field(default_factory=set)  # keys present in the database at the end
    #: When the system was seen healthy after the last fault (real runs); some
    #: write must then succeed, or a primary refusing every write would pass.
    healed_at: float | None = None
    detection_bound: float = 0.0
    #: How long a fault's consequences may last after it ends (detection, lease
    #: expiry, restart): a failover inside that window is blamed on it, not on a
    #: short fault that happens to fall there.
    settle: float = 0.0
    misconfigs: list[Misconfig] = field(default_factory=list)
    #: The database as read at the end (real runs): the History Log, the lease, the takes.
    database: DatabaseLog | None = None
    #: The primary refused the final read of what it holds (then ``committed`` is
    #: what the database's History Log holds).
    final_read_error: str | None = None

    @property
    def failovers(self) -> int:
        """Promotions after the first (the first is the start-up)."""
        return max(0, len(self.promotions) - 1)


def check(record: Record) -> list[str]:
    """Every invariant violation in ``record`` (see module docstring)."""
    violations: list[str] = [record.final_read_error] if record.final_read_error else []
    for r in record.requests:
        if r.outcome == "hung":
            violations.append(
                f"client {r.client}'s {r.op} got no answer within {r.end - r.start:.0f} s"
            )
    acked = [r for r in record.requests if r.op == "write" and r.outcome == "ok"]
    if record.healed_at is not None and not any(r.start >= record.healed_at for r in acked):
        violations.append("no write was acknowledged after the system was healthy again")
    for r in acked:
        if r.key is not None and r.key not in record.committed:
            violations.append(f"acknowledged write {r.key} (serial {r.serial}) is missing")
    writers: dict[int, str] = {}
    last_epoch = 0
    for r in sorted(acked, key=lambda r: r.serial or 0):
        if r.epoch is None or r.server is None:
            continue
        if writers.setdefault(r.epoch, r.server) != r.server:
            violations.append(
                f"two servers accepted writes in epoch {r.epoch}: {writers[r.epoch]} and {r.server}"
            )
        if r.epoch < last_epoch:
            violations.append(f"serial {r.serial} is from epoch {r.epoch} after epoch {last_epoch}")
        last_epoch = max(last_epoch, r.epoch)
    epochs = [e for _, e, _ in sorted(record.promotions)]
    if epochs != sorted(epochs) or len(set(epochs)) != len(epochs):
        violations.append(f"epochs did not only increase: {epochs}")
    by_client: dict[str, int] = {}
    for r in sorted(record.requests, key=lambda r: r.end):
        if r.outcome != "ok" or r.serial is None:
            continue
        seen = by_client.get(r.client, 0)
        if r.op == "read" and r.serial < seen:
            violations.append(f"client {r.client} saw serial go back from {seen} to {r.serial}")
        by_client[r.client] = max(seen, r.serial)
    for fault in record.faults:
        bound = fault.bound
        if bound is None and fault.kind in ("pause", "partition"):
            bound = record.detection_bound
        if bound is None or fault.duration >= bound:
            continue
        window_end = fault.start + fault.duration + bound
        others = [
            f
            for f in record.faults
            if f is not fault
            and f.start <= window_end
            and f.start + f.duration + max(record.settle, record.detection_bound) >= fault.start
        ]
        if others:
            continue  # overlapping faults: this one alone cannot be blamed
        during = [p for p in record.promotions if fault.start <= p[0] <= window_end]
        if during:
            violations.append(
                f"{fault.kind} of {fault.target} for {fault.duration:.3f} s (< its bound "
                f"{bound:g} s) caused a failover at epoch {during[0][1]}"
            )
    violations += _misconfigs(record)
    if record.database is not None:
        violations += check_database(record.database, acked, record.promotions)
    return violations


def _misconfigs(record: Record) -> list[str]:
    out: list[str] = []
    for m in record.misconfigs:
        if m.exit_code is None:
            out.append(
                f"{m.kind} {m.name} was still running {m.end - m.start:.0f} s after it started"
            )
        elif m.exit_code != 2:
            out.append(f"{m.kind} {m.name} exited with code {m.exit_code}, not 2: {m.line!r}")
        elif not m.line:
            out.append(f"{m.kind} {m.name} exited 2 without its one line")
        if m.epoch_before is None or m.epoch_before == m.epoch_after:
            continue
        near = [
            f
            for f in record.faults
            if not f.kind.startswith(m.kind)
            and f.start <= m.end
            and f.start + f.duration + max(record.settle, record.detection_bound) >= m.start
        ]
        if not near:  # another fault of the schedule may have moved it
            out.append(
                f"the primary's epoch went from {m.epoch_before} to {m.epoch_after} while "
                f"{m.kind} {m.name} ran"
            )
    return out
