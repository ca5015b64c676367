"""What the supervisor's core knows of each server (plain data), and how it logs about one."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from confserv.logs.catalog import LogEvent

from .actions import Action, Emit
from .config import ServerSpec
from .restarts import Restarts


class ProcessState(enum.StrEnum):
    """Whether something of the server is known to run."""

    DOWN = "down"
    RUNNING = "running"


@dataclass
class Member:
    """What the supervisor knows of one server.

    Attributes:
        watched: the pid whose exit the supervisor watches (started or adopted).
        found: ``watched`` was found running (adopted), not started by this supervisor:
            it ran before, so it may be the silent primary even if it never answered.
        reported: the pid the server last answered as (kept over a link loss).
        adopting: an Adopt of this pid is under way.
        unwatchable: it answers as this pid, which this host cannot watch.
        lease_ttl, engine: as the server reports them (None: not said).
        last_event: the id of the last line logged about it (the status view).
    """

    spec: ServerSpec
    restart: Restarts
    process: ProcessState = ProcessState.DOWN
    watched: int | None = None
    found: bool = False
    reported: int | None = None
    adopting: int | None = None
    unwatchable: int | None = None
    lease_ttl: float | None = None
    engine: str | None = None
    link: bool = False
    role: str | None = None
    epoch: int | None = None
    serial: int | None = None
    last_heard: float | None = None
    last_event: str = ""

    @classmethod
    def of(cls, spec: ServerSpec) -> Member:
        """A member for ``spec``, known to be nothing yet."""
        return cls(spec, Restarts(spec.section, spec.restart, autorestart=spec.autorestart))

    @property
    def name(self) -> str:
        """Its section in scs.conf."""
        return self.spec.section

    @property
    def pid(self) -> int | None:
        """The server's pid as best known: as it answered, else as watched."""
        return self.reported if self.reported is not None else self.watched

    @property
    def operator_stopped(self) -> bool:
        """An operator stopped it: no action for it until an operator starts it."""
        return self.restart.stopped

    def up_as(self, role: str) -> bool:
        """Its link is up and it last said it is ``role``."""
        return self.link and self.role == role


def emit(out: list[Action], event: LogEvent, owner: Member | None = None, **fields: Any) -> None:
    """Log one line (an :class:`Emit`), noted as ``owner``'s last event for the status view."""
    out.append(Emit(event, fields))
    if owner is not None:
        owner.last_event = f"{event.id:05d}"


def emit_all(out: list[Action], lines: list[Emit], owner: Member) -> None:
    """:func:`emit` each of ``lines`` (from a pure helper) as ``owner``'s."""
    for line in lines:
        emit(out, line.event, owner, **line.fields)
