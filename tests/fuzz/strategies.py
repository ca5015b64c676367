"""Hypothesis strategies, one per message shape of :mod:`tests.fuzz.shapes`.

:func:`request` draws a request of one port's operations whose arguments are
of the right kind or of any other (:func:`wrong`: scalars, containers, deep
nesting, control characters, huge strings); :func:`hello` a HELLO payload;
:func:`frames` a whole byte string of frames (good, mutated or cut short).
The bounded test (``tests/security/test_fuzz.py``) sends them with
``@given``; :func:`sample` draws a pool of them for the runner
(``python -m tests.fuzz``), which mixes the pool with its fast generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from addp import FrameKind, encode_frame, encode_payload

from . import shapes
from .frames import GOOD_HELLO_PAYLOAD, deep, raw_frame

_KEYS = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.none(), st.binary(max_size=4))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.binary(max_size=16),
    st.text(max_size=40),
    st.sampled_from(shapes.NASTY_STRINGS),
)


def wrong() -> st.SearchStrategy[Any]:
    """A value of a surprising kind."""
    return st.one_of(
        _SCALARS,
        st.lists(_SCALARS, max_size=4),
        st.dictionaries(_KEYS, _SCALARS, max_size=4),
        st.builds(deep, st.sampled_from((31, 33, 100)), _SCALARS, st.booleans()),
        st.sampled_from((5_000, 70_000)).map(lambda n: "w" * n),
    )


def _valid(kind: str) -> st.SearchStrategy[Any]:
    if kind == "str":
        return st.one_of(st.text(max_size=20), st.sampled_from(shapes.NAME_POOL))
    if kind == "int":
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if kind == "bool":
        return st.booleans()
    if kind == "dbid":
        return st.one_of(st.none(), st.integers(-3, 60))
    if kind == "type":
        return st.sampled_from((*shapes.TYPES, "Nope"))
    if kind == "object":
        return st.fixed_dictionaries(
            {"name": st.sampled_from(shapes.NAME_POOL)},
            optional={
                "state": st.sampled_from(("enabled", "disabled", "x")),
                "options": st.dictionaries(st.text(max_size=4), st.one_of(st.none(), wrong())),
                "number": _SCALARS,
                "folder_dbid": st.one_of(st.none(), st.integers(-2, 5)),
            },
        )
    if kind in ("delta", "options", "filter"):
        return st.dictionaries(st.text(max_size=12), _SCALARS, max_size=3)
    if kind == "hex32":
        return st.text(alphabet="0123456789abcdefG", min_size=30, max_size=34)
    if kind == "scheme":
        return st.sampled_from(shapes.SCHEMES)
    if kind == "name":
        return st.sampled_from(shapes.NAMES)
    raise ValueError(f"no argument kind {kind!r}")


def _protected(type_name: Any) -> bool:
    return isinstance(type_name, str) and type_name in shapes.PROTECTED_TYPES


@st.composite
def _request_of(draw: st.DrawFn, op: str, args: Mapping[str, str]) -> Any:
    msg: dict[Any, Any] = {"op": op, "id": draw(st.integers(1, 2**31))}
    for name, kind in args.items():
        if draw(st.booleans()):
            msg[name] = draw(st.one_of(_valid(kind), wrong()))
    if op in ("update", "delete") and _protected(msg.get("type")):
        msg["dbid"] = shapes.FAR_DBID
    if draw(st.integers(0, 9)) == 0:
        msg["id"] = draw(st.one_of(st.none(), st.text(max_size=3), st.floats(), st.booleans()))
    return msg


def request(table: Mapping[str, Mapping[str, str]]) -> st.SearchStrategy[Any]:
    """A request of one of ``table``'s operations (or an unknown op, or not a map)."""
    return st.one_of(
        *(_request_of(op, args) for op, args in table.items()),
        st.builds(
            lambda op, i: {"op": op, "id": i},
            st.one_of(st.sampled_from(shapes.UNKNOWN_OPS), wrong()),
            st.integers(0, 99),
        ),
        wrong(),
    )


def hello() -> st.SearchStrategy[Any]:
    """A HELLO payload with any of its fields replaced."""
    return st.builds(
        lambda key, value: {**GOOD_HELLO_PAYLOAD, key: value},
        st.sampled_from(("versions", "remote-timeout", "remote-trace", "max-frame-size", "app")),
        st.one_of(wrong(), st.integers(-1, 2**33)),
    )


@st.composite
def frames(draw: st.DrawFn, table: Mapping[str, Mapping[str, str]]) -> bytes:
    """Frames carrying requests of ``table``, each frame good, mutated or cut short."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        body = encode_payload(draw(request(table)))
        how = draw(st.sampled_from(("good", "good", "flags", "kind", "length", "cut", "garbage")))
        if how == "good":
            out += encode_frame(FrameKind.MESSAGE, body)
        elif how == "flags":
            out += raw_frame(FrameKind.MESSAGE, body, flags=draw(st.integers(1, 255)))
        elif how == "kind":
            out += raw_frame(draw(st.sampled_from((0, 6, 255))), body)
        elif how == "length":
            out += raw_frame(
                FrameKind.MESSAGE, body[:8], length=draw(st.integers(65537, 2**32 - 1))
            )
        elif how == "cut":
            out += encode_frame(FrameKind.MESSAGE, body)[: draw(st.integers(1, len(body) + 7))]
        else:
            out += draw(st.binary(min_size=1, max_size=40))
    return out


def sample(strategy: st.SearchStrategy[Any], count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy``, drawn by hypothesis under ``seed`` (no database)."""
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate,),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
    collect()
    return drawn[:count]
