"""Resumption tickets (pure): what a ticket resumes, and every reason it is refused.

The properties: a ticket checks only under the key and database it was issued
for, before its expiry, while the Person's hash, state and rights are those it
was bound to; any change to any character of a ticket is refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confserv.core.resume_tickets import (
    MAX_TICKET_LENGTH,
    TicketKey,
    TicketRefusedError,
    binding,
    check,
    issue,
)
from confserv.model.access import Principal

KEY = TicketKey(b"k" * 32, "db-uuid-1")
WHO = Principal(7, "ann", True, False, {"DN": frozenset("r")})
HASH = "scrypt$16384$8$1$salt$hash"


def person(stored: str = HASH, who: Principal = WHO):
    return lambda dbid: (stored, who) if dbid == who.dbid else None


def ticket(now: float = 1000.0, ttl: float = 60.0, key: TicketKey = KEY) -> str:
    return issue(key, WHO.dbid, binding(HASH, WHO), now, ttl)


def refused(reason: str, t: str, now: float = 1001.0, **kw) -> None:
    with pytest.raises(TicketRefusedError, match=reason):
        check(kw.get("key", KEY), t, now, kw.get("current", person()))


def test_a_ticket_resumes_its_person_until_it_expires() -> None:
    assert check(KEY, ticket(), 1059.9, person()) == 7
    refused("expired", ticket(), now=1060.0)


def test_a_changed_password_state_or_right_voids_it() -> None:
    t = ticket()
    refused("password or rights changed", t, current=person(stored="scrypt$new"))
    more = Principal(7, "ann", True, False, {"DN": frozenset("rc")})
    refused("password or rights changed", t, current=person(who=more))
    admin = Principal(7, "ann", True, True, {"DN": frozenset("r")})
    refused("password or rights changed", t, current=person(who=admin))
    disabled = Principal(7, "ann", False, False, {"DN": frozenset("r")})
    refused("disabled", t, current=person(who=disabled))
    refused("the Person is gone", t, current=lambda dbid: None)


def test_another_pairs_key_or_database_refuses_it() -> None:
    t = ticket()
    refused("not issued by this pair", t, key=TicketKey(b"x" * 32, "db-uuid-1"))
    refused("another database", t, key=TicketKey(KEY.secret, "db-uuid-2"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a ticket of this version"),
        ("v2.a.b", "not a ticket of this version"),
        ("v1.a", "not a ticket of this version"),
        ("v1.***.***", "not issued by this pair"),
        ("v1.é.b", "malformed"),
        ("v1." + "a" * MAX_TICKET_LENGTH, "too long"),
    ],
)
def test_malformed_tickets_are_refused_with_a_reason(text: str, reason: str) -> None:
    refused(reason, text)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_altered_character_is_refused(data: st.DataObject) -> None:
    t = ticket()
    at = data.draw(st.integers(0, len(t) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.v="
    char = data.draw(st.sampled_from(alphabet).filter(lambda c: c != t[at]))
    altered = t[:at] + char + t[at + 1 :]
    try:
        check(KEY, altered, 1001.0, person())
    except TicketRefusedError:
        return
    # Accepted only where the text still decodes to the very same bytes (base64's spare
    # bits in the last character, a '=' that decoding drops): the same ticket.
    assert _decoded(altered) == _decoded(t)


def _decoded(text: str) -> list[bytes]:
    import base64

    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in text.split(".")[1:]]


@settings(max_examples=200, deadline=None)
@given(
    dbid=st.integers(1, 2**31),
    now=st.floats(0, 2e9),
    ttl=st.floats(0.001, 1e6),
    later=st.floats(0, 2e6),
)
def test_the_expiry_is_the_only_clock(dbid: int, now: float, ttl: float, later: float) -> None:
    who = Principal(dbid, "p", True, False, {})
    t = issue(KEY, dbid, binding(HASH, who), now, ttl)
    at = now + later

    def current(d: int) -> tuple[str, Principal] | None:
        return (HASH, who) if d == dbid else None

    if at < round(now + ttl, 3):
        assert check(KEY, t, at, current) == dbid
    else:
        with pytest.raises(TicketRefusedError, match="expired"):
            check(KEY, t, at, current)
