"""ADDP options: every documented value and synonym, and one clear error per bad value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addp import AddpOptions, OptionError, TraceMode


@pytest.mark.parametrize(
    ("word", "mode"),
    [
        ("off", TraceMode.OFF),
        ("false", TraceMode.OFF),
        ("no", TraceMode.OFF),
        ("local", TraceMode.LOCAL),
        ("on", TraceMode.LOCAL),
        ("true", TraceMode.LOCAL),
        ("yes", TraceMode.LOCAL),
        ("remote", TraceMode.REMOTE),
        ("both", TraceMode.BOTH),
        ("full", TraceMode.BOTH),
        (" Full ", TraceMode.BOTH),
    ],
)
def test_trace_words(word: str, mode: TraceMode) -> None:
    assert AddpOptions.from_mapping({"addp-trace": word}).trace is mode


def test_a_full_section() -> None:
    opts = AddpOptions.from_mapping(
        {
            "protocol": "addp",
            "addp-timeout": "2.5",
            "addp-remote-timeout": "7",
            "addp-trace": "both",
        }
    )
    assert opts == AddpOptions(enabled=True, timeout=2.5, remote_timeout=7.0, trace=TraceMode.BOTH)
    assert opts.local_timeout == 2.5
    assert opts.requested_remote_timeout == 7.0


def test_protocol_default_turns_this_side_off() -> None:
    opts = AddpOptions.from_mapping({"protocol": "default", "addp-timeout": "3"})
    assert opts.local_timeout == 0.0
    assert opts.requested_remote_timeout == 0.0


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"protocol": "tcp"}, "protocol: 'tcp' is not 'addp' or 'default'"),
        ({"addp-timeout": "ten"}, "addp-timeout: 'ten' is not a number of seconds"),
        ({"addp-timeout": "-1"}, "addp-timeout: '-1' is outside 0 to 3600 seconds"),
        ({"addp-timeout": "3600.5"}, "addp-timeout: '3600.5' is outside"),
        ({"addp-timeout": "nan"}, "addp-timeout: 'nan' is outside"),
        ({"addp-remote-timeout": "inf"}, "addp-remote-timeout: 'inf' is outside"),
        ({"addp-trace": "loud"}, "addp-trace: 'loud' is not one of"),
    ],
)
def test_bad_values_name_the_option(options: dict[str, str], text: str) -> None:
    with pytest.raises(OptionError) as info:
        AddpOptions.from_mapping(options)
    assert str(info.value).startswith(text)
    assert info.value.option == text.split(":")[0]


@given(st.floats(min_value=0, max_value=3600))
def test_every_timeout_in_range_is_accepted(value: float) -> None:
    assert AddpOptions.from_mapping({"addp-timeout": repr(value)}).timeout == value


def test_direct_construction_validates() -> None:
    with pytest.raises(OptionError, match="addp-remote-timeout"):
        AddpOptions(remote_timeout=-2)
