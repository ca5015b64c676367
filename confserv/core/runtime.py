"""What every connection handler of one running server shares."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from confserv.logs.eventlog import EventLog

from .resume_tickets import DEFAULT_TTL, TicketKey
from .secret_tarpit import SecretTarpit
from .service import ConfigService


@dataclass
class Runtime:
    """The running server: its name, role, service, log and connected clients.

    ``role`` is ``primary``, ``backup`` or ``proxy``. ``role_changed`` is
    replaced (and the old event set) at every role change, so management
    watchers wake up.
    """

    name: str
    pair: str
    service: ConfigService
    log: EventLog
    role: str = "starting"
    primary_hint: str | None = None
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    daemons: set[str] = field(default_factory=set)
    clients: int = 0
    role_changed: trio.Event = field(default_factory=trio.Event)
    #: In proxy mode: relays a client's write request to the primary and
    #: returns the primary's answer fields.
    forward: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    #: In proxy mode: follow the master at (host, management port) now.
    redirect: Callable[[str, int], None] | None = None
    #: Ends the server process with a reason (set by the process's main task).
    stop: Callable[[str], None] | None = None
    #: Standing alarms by event id (shown by ``status`` and ``scs status``).
    alarms: dict[int, str] = field(default_factory=dict)
    #: Told to the supervisor: it derives its fencing delay from them.
    lease_ttl: float | None = None
    engine: str | None = None
    #: The options a pair's servers must share (see :mod:`confserv.config.options`).
    options: dict[str, str] | None = None
    #: The operator's reload from the database (``cfgctl reload``), on a master.
    reload: Callable[[str], Awaitable[dict[str, Any]]] | None = None
    #: A backup: the primary it follows while its stream is up (None: not following).
    following: str | None = None
    #: A backup: when (trio clock) the primary's stream last said it was up to date.
    replicated_at: float | None = None
    #: A backup: when (trio clock) and from whom it last heard its primary's stream; kept
    #: after the stream ends (``cfgctl promote --force`` asks while it is recent).
    heard_at: float | None = None
    heard_from: str | None = None
    #: A backup whose stream from the primary was up and ended: the primary it names
    #: may be dead, a promotion may come (told to refused clients: ``primary_lost``).
    primary_lost: bool = False
    #: Resumption tickets (issue 16): the pair's key and how long a ticket lasts (None:
    #: no key in the database, sessions log in again with their password).
    tickets: TicketKey | None = None
    ticket_ttl: float = DEFAULT_TTL
    #: Sessions resumed from a ticket, with no password check (status, metrics).
    resumed: int = 0
    #: Times this process became primary.
    promotions: int = 0
    #: Told how long each write took, seconds (the metrics' histogram; else nothing).
    write_observed: Callable[[float], None] = field(default=lambda _seconds: None)
    #: Holds back the answers to wrong management secrets, per source.
    secret_tarpit: SecretTarpit = field(init=False)

    def __post_init__(self) -> None:
        self.secret_tarpit = SecretTarpit("management secret", self.log.emit)

    @property
    def serving(self) -> bool:
        """Whether clients are served (primary, or a proxy)."""
        return self.role in ("primary", "proxy")

    def set_role(self, role: str) -> None:
        """Change the role and wake everyone waiting on ``role_changed``.

        A new role starts with no stream lost (``primary_lost`` cleared): a
        server promoted, or switched to backup by command, has not lost a
        primary; only a backup whose own stream ends sets it again.
        """
        if role == "primary" and self.role != "primary":
            self.promotions += 1
        if role != self.role:
            self.primary_lost = False
        self.role = role
        old, self.role_changed = self.role_changed, trio.Event()
        old.set()

    def status(self) -> dict[str, object]:
        """The ``status`` answer: role, epoch, last serial, pid, uptime, clients."""
        return {
            "name": self.name,
            "pair": self.pair,
            "role": self.role,
            "epoch": self.service.epoch,
            "serial": self.service.last_serial,
            "writable": self.service.writable,
            "pid": self.pid,
            "uptime": round(time.time() - self.started, 3),
            "clients": self.clients,
            "subscribers": self.service.subscriber_count,
            "objects": len(self.service),
            "primary": self.primary_hint,
            "alarms": [f"{event_id:05d} {text}" for event_id, text in sorted(self.alarms.items())],
            "lease_ttl": self.lease_ttl,
            "engine": self.engine,
            "following": self.following,
            "primary_heard_ago": (
                None if self.heard_at is None else round(trio.current_time() - self.heard_at, 1)
            ),
            "primary_heard_from": self.heard_from,
            "password_checks": self.service.passwords.hashes,
            "resumed": self.resumed,
        }

    def raise_alarm(self, event_id: int, text: str) -> bool:
        """Set a standing alarm; False if the same one stands already."""
        if self.alarms.get(event_id) == text:
            return False
        self.alarms[event_id] = text
        old, self.role_changed = self.role_changed, trio.Event()
        old.set()  # watchers (the supervisor) see it at once
        return True

    def clear_alarm(self, event_id: int) -> None:
        """Clear a standing alarm."""
        if self.alarms.pop(event_id, None) is not None:
            old, self.role_changed = self.role_changed, trio.Event()
            old.set()
