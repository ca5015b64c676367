"""What the supervisor's core knows of each server and pair (plain data), and its view rows."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from .config import PairSpec, ServerSpec


@dataclass
class Member:
    """What the supervisor knows of one server."""

    spec: ServerSpec
    process: str = "down"  # down | running
    watched: int | None = None  # the pid whose exit the supervisor watches (started or adopted)
    reported: int | None = None  # the pid the server last answered as (kept over a link loss)
    adopting: int | None = None  # an Adopt of this pid is under way
    unwatchable: int | None = None  # answers as this pid, which this host cannot watch
    lease_ttl: float | None = None  # as the server reports it (None: not said)
    engine: str | None = None  # "sqlite" | "postgre", as the server reports it
    link: bool = False
    role: str | None = None
    epoch: int | None = None
    serial: int | None = None
    last_heard: float | None = None
    operator_stopped: bool = False
    restarts: collections.deque[float] = field(default_factory=collections.deque)
    consecutive: int = 0
    next_start: float | None = None
    held_restart: bool = False  # exited while its pair was paused
    waiting_for_peer: bool = False  # a pair's second member, started after the first
    limit_alarmed: bool = False
    last_event: str = ""

    @property
    def pid(self) -> int | None:
        """The server's pid as best known: as it answered, else as watched."""
        return self.reported if self.reported is not None else self.watched


@dataclass
class Failover:
    """A promotion under way in a pair."""

    target: str
    force: bool
    detected_at: float
    promote_at: float
    in_flight: bool = False
    decided: bool = False
    old: str = ""
    fenced: bool = False
    old_pid: int | None = None  # the pid the old primary answered as (its exit is proof)


@dataclass
class Pair:
    """One warm-standby pair's supervision state."""

    spec: PairSpec
    paused: bool = False
    failover: Failover | None = None
    switchover: str | None = None  # None | "demoting" | "promoting"
    switchover_result: str = ""
    recovering: bool = False
    split_alarmed: bool = False
    stepping_down: str | None = None  # a split brain's older primary, told to step down
    no_primary_since: float | None = None


#: Seconds a pair's second member waits for the first to answer before starting anyway.
SECOND_MEMBER_DELAY = 10.0
#: Seconds both members may report backup before one is promoted.
NO_PRIMARY_GRACE = 2.0


def snapshot_row(m: Member, pair: Pair | None, now: float) -> dict[str, Any]:
    """One server's row for status displays and ``scs status --json``."""
    return {
        "section": m.spec.section,
        "pair": pair.spec.name if pair else None,
        "kind": m.spec.kind,
        "role": m.role,
        "epoch": m.epoch,
        "serial": m.serial,
        "pid": m.pid,
        "state": _state(m),
        "last_heard": None if m.last_heard is None else round(now - m.last_heard, 3),
        "restarts": len(m.restarts),
        "paused": bool(pair and pair.paused),
        "last_event": m.last_event,
    }


def _state(m: Member) -> str:
    if m.operator_stopped and m.process == "down":
        return "stopped"
    if m.process == "down":
        if m.waiting_for_peer:
            return "waiting"
        return "restarting" if m.next_start is not None else "down"
    if not m.link:
        return "unreachable"
    return "running"
