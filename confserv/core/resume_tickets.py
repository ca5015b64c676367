"""Resumption tickets: a session that resumes on the other server of its pair, no password.

A client logged in with its password gets a ticket in the ``register`` answer;
after a failover it registers on the new primary with that ticket instead
(docs/protocol.md 10.20), and the new primary checks it with one HMAC instead
of one scrypt (40-50 ms, the largest part of a failover a client saw).

A ticket is ``v1.<payload>.<mac>`` (base64url): the payload names the Person
(dbid), the database's identity (its uuid), when the ticket expires, and a
*binding*: a digest of the Person's stored password hash, its state and its
resolved rights. The MAC is HMAC-SHA256 under the pair's resumption key, a
random secret kept in the Configuration Database (``cfg_meta``, written by
``cfgctl init``), which both servers of a pair read and no client ever sees.

So a ticket is refused (:class:`TicketRefusedError`, with the reason):

- after it expires (``resume-ticket-ttl``);
- once the Person's password, state or rights changed (the binding differs),
  or the Person is gone;
- when forged or altered (the MAC), or presented to another pair (another
  database: another key and another uuid).

Pure: no clock, no IO; the caller gives the time, the key and the Person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confserv.model.access import Principal
from confserv.wire.errors import TicketRefusedError

__all__ = ["DEFAULT_TTL", "TicketKey", "TicketRefusedError", "binding", "check", "issue"]

#: How long a ticket is good for unless ``resume-ticket-ttl`` says otherwise, seconds.
DEFAULT_TTL = 3600.0
#: Longest ticket accepted off the wire, characters (a real one is about 150).
MAX_TICKET_LENGTH = 512
_PREFIX = "v1"


@dataclass(frozen=True, slots=True)
class TicketKey:
    """The pair's resumption key and the identity of the database it belongs to."""

    secret: bytes
    database: str

    def mac(self, payload: bytes) -> bytes:
        """HMAC-SHA256 of ``payload`` under the key."""
        return hmac.new(self.secret, payload, hashlib.sha256).digest()


def binding(stored_hash: str, who: Principal) -> str:
    """What a ticket is bound to: the Person's password hash, state and rights, digested."""
    grants = sorted((key, "".join(sorted(letters))) for key, letters in who.grants.items())
    fact = json.dumps([stored_hash, who.enabled, who.admin, grants], separators=(",", ":"))
    return hashlib.sha256(fact.encode()).hexdigest()[:32]


def issue(key: TicketKey, dbid: int, bound: str, now: float, ttl: float) -> str:
    """A ticket for Person ``dbid`` with ``bound`` (:func:`binding`), good until ``now + ttl``."""
    body = {"p": dbid, "db": key.database, "exp": round(now + ttl, 3), "b": bound}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return f"{_PREFIX}.{_b64(payload)}.{_b64(key.mac(payload))}"


def check(
    key: TicketKey,
    ticket: str,
    now: float,
    current: Callable[[int], tuple[str, Principal] | None],
) -> int:
    """The Person dbid ``ticket`` resumes; :class:`TicketRefusedError` saying why not.

    ``current(dbid)`` gives the Person's stored hash and resolved rights as they
    are now (None: no such Person)."""
    payload, mac = _split(ticket)
    if not hmac.compare_digest(key.mac(payload), mac):
        raise TicketRefusedError("resumption ticket refused: not issued by this pair")
    body = _body(payload)
    if body["db"] != key.database:  # (a key shared by two databases: not by init)
        raise TicketRefusedError("resumption ticket refused: issued for another database")
    if now >= body["exp"]:
        raise TicketRefusedError("resumption ticket refused: expired")
    person = current(body["p"])
    if person is None:
        raise TicketRefusedError("resumption ticket refused: the Person is gone")
    stored, who = person
    if not who.enabled:
        raise TicketRefusedError("resumption ticket refused: the Person is disabled")
    if not hmac.compare_digest(binding(stored, who), body["b"]):
        raise TicketRefusedError(
            "resumption ticket refused: the Person's password or rights changed since"
        )
    return int(body["p"])


def _split(ticket: str) -> tuple[bytes, bytes]:
    if len(ticket) > MAX_TICKET_LENGTH:
        raise TicketRefusedError("resumption ticket refused: too long")
    parts = ticket.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise TicketRefusedError("resumption ticket refused: not a ticket of this version")
    try:
        return _unb64(parts[1]), _unb64(parts[2])
    except ValueError:
        raise TicketRefusedError("resumption ticket refused: malformed") from None


def _body(payload: bytes) -> Mapping[str, Any]:
    """The MAC'd payload (so ours: a shape error is a bug, still refused cleanly)."""
    try:
        body = json.loads(payload)
        if (
            isinstance(body, dict)
            and isinstance(body.get("p"), int)
            and isinstance(body.get("db"), str)
            and isinstance(body.get("exp"), (int, float))
            and isinstance(body.get("b"), str)
        ):
            return body
    except ValueError:
        pass
    raise TicketRefusedError("resumption ticket refused: malformed")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
