"""The HELLO's checks (addp/_hello.py): any peer value is a PeerHello within the
protocol's ranges or one HandshakeError, and what a side sends reads back as sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addp import AddpOptions, HandshakeError, LocalProtocolError, decode_payload
from addp._frames import MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE
from addp._hello import PROTOCOL_VERSIONS, PeerHello, hello_payload, read_hello
from addp._options import MAX_TIMEOUT

_ANY = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
)
_MAX_MS = int(MAX_TIMEOUT * 1000)
#: A field's value: one of its range's edges (either side), or anything.
_FIELDS = {
    "versions": st.sampled_from([[2, 3], [0, 0], [1, 1], [1, 0], [0, 2], [1], [True, 1]])
    | st.lists(st.integers(-1, 3), max_size=3)
    | _ANY,
    "remote-timeout": st.sampled_from([-1, 0, 1, _MAX_MS, _MAX_MS + 1, 1.0, True]) | _ANY,
    "max-frame-size": st.sampled_from(
        [MIN_MAX_FRAME_SIZE - 1, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE + 1]
    )
    | _ANY,
    "remote-trace": st.sampled_from(["x", 0, 1, None]) | st.booleans() | _ANY,
    "app": _ANY,
}
_GOOD = st.fixed_dictionaries(
    {
        "versions": st.tuples(st.integers(-1, 1), st.integers(1, 3)).map(list),
        "remote-timeout": st.integers(0, _MAX_MS),
        "max-frame-size": st.integers(MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE),
        "remote-trace": st.booleans(),
    },
    optional={"app": _ANY},
)


@st.composite
def _hellos(draw: st.DrawFn) -> Any:
    """A good HELLO with at most one field replaced or removed, or not a map at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_ANY | st.lists(_ANY, max_size=2))
    hello: dict[str, Any] = draw(_GOOD)
    field = draw(st.sampled_from([None, *_FIELDS]))
    if field is not None:
        if draw(st.booleans()):
            hello.pop(field, None)
        else:
            hello[field] = draw(_FIELDS[field])
    return hello


@settings(max_examples=400)
@given(value=_hellos())
def test_any_hello_is_read_within_the_protocols_ranges_or_refused_with_one_error(
    value: Any,
) -> None:
    try:
        hello = read_hello(value)
    except HandshakeError as exc:
        assert str(exc).startswith(("HELLO", "no protocol version"))
        return
    assert isinstance(value, dict)
    assert PROTOCOL_VERSIONS[0] <= hello.version <= PROTOCOL_VERSIONS[1]
    low, high = value["versions"]
    assert low <= hello.version <= high
    assert 0 <= hello.pushed_timeout <= MAX_TIMEOUT
    assert MIN_MAX_FRAME_SIZE <= hello.max_frame_size <= MAX_MAX_FRAME_SIZE
    assert isinstance(hello.remote_trace, bool)
    assert hello.app == value.get("app")


@given(
    timeout=st.floats(0, MAX_TIMEOUT),
    limit=st.integers(MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE),
    app=_ANY | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)
def test_what_a_side_announces_reads_back_as_announced(
    timeout: float, limit: int, app: Any
) -> None:
    options = AddpOptions.addp(1.0, remote_timeout=timeout)
    try:
        data = hello_payload(options, limit, app)
    except LocalProtocolError:
        return  # an app hello too large for the smallest frame limit: refused here
    got = read_hello(decode_payload(data))
    pushed = options.requested_remote_timeout
    assert got == PeerHello(PROTOCOL_VERSIONS[1], got.pushed_timeout, limit, False, app)
    assert abs(got.pushed_timeout - pushed) <= 0.0005 or (0 < pushed < 0.001)
    assert (got.pushed_timeout > 0) == (pushed > 0)  # never rounded down to "off"


_MIN, _MAX = MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE
#: Each field's values at and beyond the edges of its range, and whether each is good.
_EDGES = [
    *(("versions", v, ok) for v, ok in [([2, 3], False), ([0, 0], False), ([1, 1], True)]),
    *(("versions", v, ok) for v, ok in [([1, 0], False), ([0, 2], True), ([1], False)]),
    ("versions", [True, 1], False),
    *(("remote-timeout", v, ok) for v, ok in [(-1, False), (0, True), (_MAX_MS, True)]),
    *(("remote-timeout", v, ok) for v, ok in [(_MAX_MS + 1, False), (1.0, False), (True, False)]),
    *(("max-frame-size", v, ok) for v, ok in [(_MIN - 1, False), (_MIN, True), (_MAX, True)]),
    *(("max-frame-size", v, ok) for v, ok in [(_MAX + 1, False), (True, False)]),
    *(("remote-trace", v, ok) for v, ok in [("x", False), (0, False), (True, True), (None, False)]),
]


@pytest.mark.parametrize(("field", "value", "good"), _EDGES)
def test_each_field_is_refused_just_beyond_its_range_and_taken_at_its_edge(
    field: str, value: Any, good: bool
) -> None:
    hello = {"versions": [1, 1], field: value}
    if good:
        assert read_hello(hello).version == 1
    else:
        with pytest.raises(HandshakeError, match=f"'{field}'|no protocol version"):
            read_hello(hello)
