"""The supervisor's status view: one row per server, read from the core, deciding nothing (pure).

:func:`snapshot` is what ``scs status --json``, the control port and the live
table show. It only reads the members, their pairs and the start-up order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .pair_control import PairControl
from .startup import StartupOrder
from .state import Member, ProcessState


def snapshot(
    members: Iterable[tuple[Member, PairControl | None]], startup: StartupOrder, now: float
) -> list[dict[str, Any]]:
    """Every server's row, in file order."""
    return [row(m, pair, startup, now) for m, pair in members]


def row(m: Member, pair: PairControl | None, startup: StartupOrder, now: float) -> dict[str, Any]:
    """One server's row for status displays and ``scs status --json``."""
    return {
        "section": m.name,
        "host": m.spec.machine,  # the host section whose agent runs it; None: this one
        "pair": pair.name if pair else None,
        "kind": m.spec.kind,
        "role": m.role,
        "epoch": m.epoch,
        "serial": m.serial,
        "pid": m.pid,
        "state": state(m, startup),
        "last_heard": None if m.last_heard is None else round(now - m.last_heard, 3),
        "restarts": m.restart.count(),
        "paused": bool(pair and pair.paused),
        "last_event": m.last_event,
    }


def state(m: Member, startup: StartupOrder) -> str:
    """``stopped``, ``waiting``, ``restarting``, ``down``, ``unreachable`` or ``running``."""
    if m.operator_stopped and m.process == ProcessState.DOWN:
        return "stopped"
    if m.process == ProcessState.DOWN:
        if startup.is_waiting(m.name):
            return "waiting"
        return "restarting" if m.restart.next_start is not None else "down"
    if not m.link:
        return "unreachable"
    return "running"


def watched(
    servers: Iterable[tuple[str, str | None, str | None, str]],
    seen: dict[str, Any],
    heard: dict[str, float],
    now: float,
) -> list[dict[str, Any]]:
    """The rows of a standby supervisor: what each server's link says, nothing decided.

    ``servers``: (section, host, pair, kind) in file order; ``seen``: the last
    :class:`~scs.status.ServerStatus` of each server whose link is up; ``heard``:
    when each was last heard."""
    rows = []
    for name, host, pair, kind in servers:
        status = seen.get(name)
        rows.append(
            {
                "section": name,
                "host": host,
                "pair": pair,
                "kind": kind,
                "role": None if status is None else status.role,
                "epoch": None if status is None else status.epoch,
                "serial": None if status is None else status.serial,
                "pid": None if status is None else status.pid,
                "state": "watched" if status is not None else "unreachable",
                "last_heard": round(now - heard[name], 3) if name in heard else None,
                "restarts": 0,
                "paused": False,
                "last_event": "standby: watching, no action",
            }
        )
    return rows
