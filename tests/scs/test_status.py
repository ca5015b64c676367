"""The management status parsed at the edge: typed, or one clear error naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scs.status import MalformedStatus, ServerStatus, parse_status


def test_a_servers_status_answer_parses() -> None:
    answer = {
        "re": 3,
        "ok": True,
        "push": "role",
        "name": "confserv",
        "role": "primary",
        "epoch": 4,
        "serial": 120,
        "writable": True,
        "pid": 4242,
        "alarms": [],
        "lease_ttl": 10,
        "engine": "sqlite",
        "primary": None,
    }
    assert parse_status(answer) == ServerStatus("primary", 4, 120, 4242, 10.0, "sqlite")
    # A proxy says nothing of a lease; a fresh server nothing yet of its pid.
    assert parse_status({"role": "proxy", "lease_ttl": None, "engine": None}) == ServerStatus(
        role="proxy"
    )
    assert parse_status({}) == ServerStatus()
    assert parse_status({"pid": 0}).pid is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": 1}, "status field 'role' is 1 (int), not a string"),
        ({"epoch": "2"}, "status field 'epoch' is '2' (str), not an integer"),
        ({"epoch": 2.0}, "'epoch' is 2.0 (float), not an integer"),
        ({"serial": True}, "'serial' is True (bool), not an integer"),
        ({"pid": [1]}, "'pid' is [1] (list), not an integer"),
        ({"lease_ttl": "10"}, "'lease_ttl' is '10' (str), not a number"),
        ({"engine": {}}, "'engine' is {} (dict), not a string"),
    ],
)
def test_a_malformed_status_is_one_line_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedStatus) as caught:
        parse_status(fields)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_status_that_is_not_a_map_is_malformed() -> None:
    for bad in (None, [], "primary", 7):
        with pytest.raises(MalformedStatus, match="a status is a map"):
            parse_status(bad)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.dictionaries(
        st.sampled_from(["role", "epoch", "serial", "pid", "lease_ttl", "engine", "other"]),
        _values,
    )
)
def test_anything_either_parses_to_usable_values_or_is_refused(fields: dict[str, Any]) -> None:
    try:
        status = parse_status(fields)
    except MalformedStatus as exc:
        assert any(repr(k) in str(exc) for k in fields)
        return
    for key in ("epoch", "serial", "pid"):
        value = getattr(status, key)
        assert value is None or (type(value) is int and value == fields[key])
    assert status.pid is None or status.pid > 0
    assert status.lease_ttl is None or 0 < status.lease_ttl < float("inf")
    assert status.role is None or (isinstance(status.role, str) and status.role)
    assert status.engine is None or (isinstance(status.engine, str) and status.engine)
