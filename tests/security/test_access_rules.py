"""Issue 12, access control: properties of the pure rules (confserv.model.access).

- rights are monotone in group membership;
- an administrator may do every write; a disabled Person has no rights;
- escalation is impossible: whatever write the rules accept, the Person or
  group it produces holds no right the actor lacks (beyond what it held), and
  an account whose password the actor may reset holds nothing the actor lacks;
- the rights text is canonical, and the object model validates grants.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confserv.model.access import (
    LETTERS,
    Principal,
    RightsTextError,
    WriteRequest,
    check_write,
    parse_letters,
    principal,
    rights_of,
)
from confserv.model.objects import check_delta, new_object
from confserv.wire.errors import FieldValueError, PermissionDeniedError

TYPES = ("Host", "DN", "Person", "AccessGroup", "Application")
FOLDERS = (1, 2, 3)
KEYS = ("*", *TYPES, *(f"folder:{f}" for f in FOLDERS))
GROUP_IDS = (11, 12, 13, 14)

letters = st.sets(st.sampled_from(LETTERS), max_size=2).map(
    lambda s: "".join(c for c in LETTERS if c in s)
)
grants = st.dictionaries(st.sampled_from(KEYS), letters, max_size=4)
states = st.sampled_from(("enabled", "enabled", "disabled"))


@st.composite
def groups(draw: Any) -> dict[int, dict[str, Any]]:
    out = {}
    for dbid in GROUP_IDS:
        out[dbid] = {
            "type": "AccessGroup",
            "dbid": dbid,
            "name": f"g{dbid}",
            "state": draw(states),
            "is_administrator": draw(st.booleans()) and draw(st.booleans()),
            "permissions": draw(grants),
        }
    return out


@st.composite
def persons(draw: Any, dbid: int) -> dict[str, Any]:
    return {
        "type": "Person",
        "dbid": dbid,
        "name": f"p{dbid}",
        "state": draw(states),
        "permissions": draw(grants),
        "access_group_dbids": draw(st.lists(st.sampled_from(GROUP_IDS), unique=True, max_size=3)),
        "folder_dbid": draw(st.sampled_from((None, *FOLDERS))),
    }


def every_right(who: Principal) -> set[tuple[str, Any, str]]:
    """(type, folder, letter) for every right ``who`` holds."""
    return {
        (t, f, letter)
        for t in TYPES
        for f in (None, *FOLDERS)
        for letter in rights_of(who, t, f).letters
    }


def allowed(actor: Principal, req: WriteRequest, gs: dict[int, dict[str, Any]]) -> bool:
    try:
        check_write(actor, req, gs)
    except PermissionDeniedError:
        return False
    return True


@given(persons(1), groups(), st.sampled_from(GROUP_IDS))
def test_rights_are_monotone_in_group_membership(
    person: dict[str, Any], gs: dict[int, dict[str, Any]], extra: int
) -> None:
    before = every_right(principal(person, gs))
    joined = {**person, "access_group_dbids": [*person["access_group_dbids"], extra]}
    assert before <= every_right(principal(joined, gs))


@given(persons(1), groups())
def test_a_disabled_person_has_no_rights(
    person: dict[str, Any], gs: dict[int, dict[str, Any]]
) -> None:
    who = principal({**person, "state": "disabled"}, gs)
    assert every_right(who) == set()
    assert not who.admin


@given(
    persons(1),
    persons(2),
    groups(),
    st.sampled_from(("create", "update", "delete")),
    st.sampled_from(TYPES),
)
def test_an_administrator_may_do_every_write(
    actor: dict[str, Any],
    target: dict[str, Any],
    gs: dict[int, dict[str, Any]],
    op: str,
    type_name: str,
) -> None:
    gs[GROUP_IDS[0]] |= {"state": "enabled", "is_administrator": True}
    admin = principal({**actor, "state": "enabled", "access_group_dbids": [GROUP_IDS[0]]}, gs)
    obj = {**target, "type": type_name}
    req = WriteRequest(
        op=op,
        type_name=type_name,
        current=None if op == "create" else obj,
        new=None if op == "delete" else obj,
        changed=frozenset({"password", "state", "permissions", "name"}),
        protected=type_name == "Application",
        target=principal(obj, gs, assume_enabled=True) if type_name == "Person" else None,
    )
    assert allowed(admin, req, gs)


@settings(max_examples=300)
@given(persons(1), persons(2), persons(2), groups(), st.booleans())
def test_no_write_gives_a_right_the_actor_lacks(
    actor_obj: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    gs: dict[int, dict[str, Any]],
    creating: bool,
) -> None:
    """A Person created or changed (grants, groups, state) by a non-administrator ends
    up holding nothing beyond what it held before plus what the actor holds."""
    # An actor who may create and change Persons, so that many writes are allowed.
    strong = {**actor_obj["permissions"], "Person": "rcud"}
    actor = principal({**actor_obj, "state": "enabled", "permissions": strong}, gs)
    if actor.admin:
        return
    changed = frozenset({"permissions", "access_group_dbids", "state"})
    req = WriteRequest(
        op="create" if creating else "update",
        type_name="Person",
        current=None if creating else old,
        new=new,
        changed=frozenset() if creating else changed,
        target=None if creating else principal(old, gs, assume_enabled=True),
    )
    if not allowed(actor, req, gs):
        return
    had = set() if creating else every_right(principal(old, gs))
    after = every_right(principal(new, gs, assume_enabled=True))
    assert after <= had | every_right(actor)


@settings(max_examples=300)
@given(persons(1), groups(), st.sampled_from(GROUP_IDS), grants, states)
def test_no_group_change_gives_its_members_a_right_the_actor_lacks(
    actor_obj: dict[str, Any],
    gs: dict[int, dict[str, Any]],
    dbid: int,
    new_grants: dict[str, str],
    new_state: str,
) -> None:
    strong = {**actor_obj["permissions"], "AccessGroup": "rcud"}
    actor = principal({**actor_obj, "state": "enabled", "permissions": strong}, gs)
    if actor.admin:
        return
    old = gs[dbid]
    new = {**old, "permissions": new_grants, "state": new_state}
    req = WriteRequest(
        op="update",
        type_name="AccessGroup",
        current=old,
        new=new,
        changed=frozenset({"permissions", "state"}),
    )
    if not allowed(actor, req, gs):
        return
    member = {"type": "Person", "dbid": 9, "name": "m", "state": "enabled"}
    member["access_group_dbids"] = [dbid]
    had = every_right(principal(member, gs))
    after = every_right(principal(member, {**gs, dbid: new}))
    assert after <= had | every_right(actor)


@settings(max_examples=300)
@given(persons(1), persons(2), groups())
def test_an_account_the_actor_may_take_over_holds_nothing_more(
    actor_obj: dict[str, Any], target: dict[str, Any], gs: dict[int, dict[str, Any]]
) -> None:
    """Resetting another Person's password (and enabling it) is allowed only when
    logging in as it gains the actor nothing."""
    strong = {**actor_obj["permissions"], "Person": "ru"}
    actor = principal({**actor_obj, "state": "enabled", "permissions": strong}, gs)
    req = WriteRequest(
        op="update",
        type_name="Person",
        current=target,
        new={**target, "state": "enabled"},
        changed=frozenset({"password", "state"}),
        target=principal(target, gs, assume_enabled=True),
    )
    if not allowed(actor, req, gs) or actor.admin:
        return
    assert every_right(principal({**target, "state": "enabled"}, gs)) <= every_right(actor)


@given(st.text(alphabet="rcudx", max_size=6))
def test_rights_text_is_canonical(text: str) -> None:
    try:
        canonical = parse_letters(text)
    except RightsTextError:
        assert set(text) - set(LETTERS) or len(set(text)) != len(text)
        return
    assert set(canonical) == set(text)
    assert parse_letters(canonical) == canonical
    assert canonical == "".join(c for c in LETTERS if c in text)


def test_the_model_validates_grants_and_groups() -> None:
    p = new_object("Person", {"name": "p", "permissions": {"DN": "ur", "*": ""}})
    assert p["permissions"] == {"DN": "ru"}  # canonical; an empty grant is dropped
    assert p["access_group_dbids"] == []
    for bad in ({"Nope": "r"}, {"DN": "rw"}, {"DN": "rr"}, {"folder:x": "r"}, ["DN"]):
        with pytest.raises(FieldValueError):
            new_object("Person", {"name": "p", "permissions": bad})
    for bad_groups in ([0], ["3"], [True], 3):
        with pytest.raises(FieldValueError):
            check_delta("Person", {"access_group_dbids": bad_groups}, None)
    fields, _ = check_delta("Person", {"access_group_dbids": [3, 3, 4]}, None)
    assert fields == {"access_group_dbids": [3, 4]}
