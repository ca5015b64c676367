"""The agent's pure decisions and request checking, as hypothesis properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lca.core import AgentCore
from lca.protocol import (
    AgentRequestError,
    List,
    Request,
    Signal,
    StaleSupervisorError,
    Start,
    parse_request,
)

names = st.sampled_from(["a", "b", "c"])
pids = st.integers(min_value=1, max_value=5)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("exit"), names, pids),
        st.tuples(st.just("ack"), names, pids),
        st.tuples(st.just("connect"), names, pids),
    ),
    max_size=60,
)


@given(steps)
def test_every_exit_is_told_until_acknowledged_in_order(script: list[tuple[str, str, int]]) -> None:
    core = AgentCore()
    happened: list[tuple[str, int]] = []
    acked: set[tuple[str, int]] = set()
    for step, name, pid in script:
        if step == "exit" and (name, pid) not in happened:
            happened.append((name, pid))
            assert core.exited(name, pid, "exit code 0").pid == pid
        elif step == "ack":
            assert core.acknowledged(name, pid) == (
                (name, pid) in happened and (name, pid) not in acked
            )
            if (name, pid) in happened:
                acked.add((name, pid))
        else:
            told = [(e.name, e.pid) for e in core.connected()]
            assert told == [k for k in happened if k not in acked]  # all owed, oldest first


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=40))
def test_no_command_from_an_older_supervisor_epoch_is_admitted(epochs: list[int]) -> None:
    core = AgentCore()
    newest = 0
    for epoch in epochs:
        if epoch < newest:
            with pytest.raises(StaleSupervisorError, match=f"epoch {epoch} is older"):
                core.admit(Request(1, epoch, List()))
        else:
            assert core.admit(Request(1, epoch, List())) == (epoch > newest)
            newest = epoch
        assert core.epoch == newest


def test_a_start_request_is_checked_into_a_command() -> None:
    request = parse_request(
        {
            "op": "start",
            "id": 7,
            "epoch": 2,
            "name": "cs",
            "argv": ["confserv", "-s", "cs"],
            "cwd": "/srv",
            "log": "/srv/cs.log",
            "env": {"B": "2", "A": "1"},
        }
    )
    assert request == Request(
        7, 2, Start("cs", ("confserv", "-s", "cs"), "/srv", "/srv/cs.log", (("A", "1"), ("B", "2")))
    )
    signalled = parse_request(
        {"op": "signal", "id": 1, "epoch": 0, "name": "cs", "pid": 9, "signal": "SIGSTOP"}
    )
    assert signalled.command == Signal("cs", 9, "SIGSTOP")


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        ([1, 2], "must be a map"),
        ({"op": "start", "epoch": 0}, "missing 'id'"),
        ({"op": "rm -rf", "id": 1, "epoch": 0}, "unknown op 'rm -rf'"),
        ({"op": "list", "id": 1}, "missing 'epoch'"),
        ({"op": "list", "id": 1, "epoch": -1}, "must not be negative"),
        ({"op": "list", "id": True, "epoch": 0}, "'id' must be int"),
        (
            {
                "op": "start",
                "id": 1,
                "epoch": 0,
                "name": "../x",
                "argv": ["a"],
                "cwd": "/",
                "log": "/l",
            },
            "cannot name a file",
        ),
        (
            {"op": "start", "id": 1, "epoch": 0, "name": "x", "argv": [], "cwd": "/", "log": "/l"},
            "'argv' must hold 1 to",
        ),
        (
            {
                "op": "start",
                "id": 1,
                "epoch": 0,
                "name": "x",
                "argv": ["a\0b"],
                "cwd": "/",
                "log": "/l",
            },
            "without NUL",
        ),
        (
            {
                "op": "start",
                "id": 1,
                "epoch": 0,
                "name": "x",
                "argv": ["a"],
                "cwd": "/",
                "log": "/l",
                "env": {"A=B": "c"},
            },
            "is not NAME=text",
        ),
        (
            {"op": "signal", "id": 1, "epoch": 0, "name": "x", "pid": 3, "signal": "SIGSEGV"},
            "is not one of",
        ),
        ({"op": "stop", "id": 1, "epoch": 0, "name": "x", "pid": 0}, "'pid' must be positive"),
        ({"op": "stop", "id": 1, "epoch": 0, "name": "x", "pid": 3, "timeout": 1e9}, "0 to 3600"),
    ],
)
def test_a_bad_request_is_one_line_naming_what_is_wrong(msg: Any, why: str) -> None:
    with pytest.raises(AgentRequestError, match=why.replace("[", r"\[")) as info:
        parse_request(msg)
    assert "\n" not in str(info.value)


leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
requests = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["start", "stop", "signal", "list", "ack", "x"]),
        "id": values,
        "epoch": values,
    },
    optional={k: values for k in ("name", "argv", "cwd", "log", "env", "pid", "signal", "timeout")},
)


@given(st.one_of(values, requests))
def test_any_message_is_a_request_or_one_agent_request_error(msg: Any) -> None:
    try:
        request = parse_request(msg)
    except AgentRequestError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(request, Request)
