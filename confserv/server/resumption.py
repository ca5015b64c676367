"""A client session resumed on this server from a ticket its pair issued (issue 16).

The glue between a client connection's ``register`` and the pure tickets of
:mod:`confserv.core.resume_tickets`: the Person as memory holds it now (its
stored hash and resolved rights, which both servers of a pair hold alike),
the wall clock (tickets cross processes and hosts), and the pair's key from
the database (:attr:`Runtime.tickets`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confserv.core.access_checks import resolve
from confserv.core.resume_tickets import TicketKey, binding, check, issue
from confserv.core.runtime import Runtime
from confserv.model.access import Principal
from confserv.model.objects import STORED_SECRET
from confserv.wire.errors import TicketRefusedError

__all__ = ["resume_person", "ticket_for", "ticket_key"]


def ticket_key(secret_hex: str | None, database: str) -> TicketKey | None:
    """The pair's key from ``cfg_meta``'s hex text (None: the database has none, or a
    malformed one: no tickets, sessions log in again)."""
    if not secret_hex:
        return None
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        return None
    return TicketKey(secret, database) if len(secret) >= 16 else None


def ticket_for(rt: Runtime, person: Mapping[str, Any]) -> str | None:
    """A fresh ticket for ``person`` (None when this pair issues none)."""
    key = rt.tickets
    if key is None or rt.ticket_ttl <= 0:
        return None
    stored, who = _current(rt, person)
    return issue(key, who.dbid, binding(stored, who), time.time(), rt.ticket_ttl)


def resume_person(rt: Runtime, ticket: str) -> dict[str, Any]:
    """The Person ``ticket`` resumes; :class:`TicketRefusedError` saying why not."""
    key = rt.tickets
    if key is None:
        raise TicketRefusedError("resumption ticket refused: this pair issues none")
    svc = rt.service

    def current(dbid: int) -> tuple[str, Principal] | None:
        person = svc.get("Person", dbid)
        return None if person is None else _current(rt, person)

    dbid = check(key, ticket, time.time(), current)
    person = svc.get("Person", dbid)
    if person is None:  # (gone between the check and here: same answer)
        raise TicketRefusedError("resumption ticket refused: the Person is gone")
    return person


def _current(rt: Runtime, person: Mapping[str, Any]) -> tuple[str, Principal]:
    return str(person.get(STORED_SECRET) or ""), resolve(rt.service, person)
