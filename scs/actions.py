"""What the supervisor's core asks for: plain values, carried out by :mod:`scs.supervisor`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confserv.logs.catalog import LogEvent


@dataclass(frozen=True, slots=True)
class Start:
    """Action: start the server's process."""

    server: str
    why: str = ""


@dataclass(frozen=True, slots=True)
class Stop:
    """Action: stop the server's process (terminate, then kill after its stop-timeout)."""

    server: str


@dataclass(frozen=True, slots=True)
class Promote:
    """Action: ``switch-to-primary`` on the server (``force``: proof of death).

    ``over_epoch``: the epoch the dead primary held; the server then overrides
    only a lease still at that epoch, never one that moved on to a live holder
    while the command was on its way (invariant 4). None: no epoch is known.
    """

    server: str
    force: bool
    over_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class Demote:
    """Action: ``switch-to-backup`` on the server (planned switchover, or a step-down)."""

    server: str


@dataclass(frozen=True, slots=True)
class Fence:
    """Action: kill the server's process (it is silent and blocks the failover).

    ``pid`` is always the process the supervisor watches (started or adopted),
    so that its exit is then seen, and is proof of death.
    """

    server: str
    pid: int


@dataclass(frozen=True, slots=True)
class Adopt:
    """Action: watch ``pid``, which the server's management port says it runs as.

    The supervisor opens a pidfd on it and reports its exit (``process_exited``)
    or, when it cannot be watched, why (``adoption_failed``); it never starts a
    second copy of a server that answers.
    """

    server: str
    pid: int


@dataclass(frozen=True, slots=True)
class Redirect:
    """Action: tell a proxy to follow ``server`` now."""

    proxy: str
    server: str


@dataclass(frozen=True, slots=True)
class Emit:
    """Action: write one log line."""

    event: LogEvent
    fields: dict[str, Any]


Action = Start | Stop | Promote | Demote | Redirect | Fence | Adopt | Emit
