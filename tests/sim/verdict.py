"""Judging one simulated schedule: the checker, the database-wide oracle, and what only a
simulation sees.

The invariants (``docs/design.md``) and where each is judged:

1. one writer per epoch, epochs only increase: the checker (acknowledged
   writes by server and epoch), the oracle (the History Log, every epoch
   taken once by a pair member), and the database itself: every commit is at
   the lease's epoch of its moment (:attr:`tests.sim.store.SimDatabase.violations`);
2. no acknowledged write lost: the checker, against the primary's final
   read, and the oracle, against the History Log;
3. no older epoch applied: the oracle (epochs only increase along serials)
   and the checker (no acknowledged serial of an older epoch after a newer);
4. serials never go back for a reader: the checker, over ``r``'s and ``p``'s
   reads; and read-your-writes through the proxy;
5. no promotion during a valid lease without proof of death: the database
   (a valid lease taken only by force, and only from a dead process);
6. liveness: every request answered, and a write acknowledged within
   :data:`~tests.sim.schedule.LIVENESS_BOUND` after the heal; a fault shorter
   than its bound causes no failover (the checker);
7. no process crashes, and nothing is logged with a traceback.
"""

from __future__ import annotations

import json
import re

from ..chaos.checker import check
from ..chaos.oracle import DatabaseLog, HistoryRow
from .schedule import Schedule

#: Faults after which the pair fails over; their failover time is measured.
FAILOVER_FAULTS = (
    "kill primary",
    "kill-mid-promotion",
    "pause primary long",
    "pause-mid-commit primary",
    "db-cut primary",
)


def _name(change: str) -> str | None:
    try:
        data = json.loads(change)
    except ValueError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name is not None else None


def database_log(schedule: Schedule) -> DatabaseLog:
    """The History Log, the lease and the counter of the simulated database, and the takes."""
    db = schedule.world.db
    history = [
        HistoryRow(int(s), int(e), str(o), str(t), _name(str(c)))
        for s, e, o, t, c in db.query(
            "SELECT serial, epoch, op, type, change FROM cfg_history ORDER BY serial"
        )
    ]
    lease = db.query("SELECT epoch, holder FROM cfg_lease WHERE name = 'database'")
    counter = db.query("SELECT value FROM cfg_counter WHERE name = 'serial'")
    epoch, holder = lease[0] if lease else (0, "")
    return DatabaseLog(
        history,
        list(schedule.takes),
        int(epoch),
        str(holder),
        int(counter[0][0]) if counter else 0,
    )


def judge(schedule: Schedule) -> list[str]:
    """Every violation in the schedule (see module docstring); empty when it was clean."""
    record = schedule.record
    record.database = database_log(schedule)
    violations = check(record)
    world = schedule.world
    violations += world.db.violations
    violations += schedule.notes
    violations += [
        f"read-your-writes: p wrote {u} through the proxy and did not read it back"
        for u in schedule.workload.unread
    ]
    violations += [_crash_line(crash) for crash in world.crashes]
    return violations


def _crash_line(crash: str) -> str:
    """The first line of a crash report and its innermost error (the trace has the rest)."""
    lines = [line.strip(" |+-") for line in crash.splitlines()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Dead|Group)\b", line)]
    innermost = next((e for e in reversed(errors) if "Group" not in e.split(":")[0]), "")
    return f"{lines[0]} {innermost}".strip()


def failover_times(schedule: Schedule) -> dict[str, list[float]]:
    """From the fault to the first write acknowledged in a newer epoch, for the faults
    after which a failover is expected (one-fault schedules only: two blur it)."""
    record = schedule.record
    if len(record.faults) != 1:
        return {}
    fault = record.faults[0]
    kind = next((k for k in FAILOVER_FAULTS if fault.target.startswith(k)), None)
    if kind is None:
        return {}
    before = [r.epoch for r in record.requests if r.outcome == "ok" and r.end <= fault.start]
    epoch = max((e for e in before if e is not None), default=0)
    after = [
        r.end
        for r in record.requests
        if r.op == "write" and r.outcome == "ok" and r.epoch is not None and r.epoch > epoch
    ]
    return {kind: [min(after) - fault.start]} if after else {}
