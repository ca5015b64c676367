"""The chaos summary keeps, per fault kind, the slowest failover and how to replay it."""

from __future__ import annotations

import pytest

from .checker import Record
from .report import Summary, print_summary


def test_the_slowest_failover_of_each_kind_names_its_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = Summary("sqlite")
    summary.add(Record(), [], {"pause primary long": [2.4]}, "replay seed 7")
    summary.add(Record(), [], {"pause primary long": [8.0], "kill primary": [0.03]}, "seed 9")
    summary.add(Record(), [], {"pause primary long": [2.9]}, "replay seed 11")
    assert summary.slowest == {
        "pause primary long": (8.0, "seed 9"),
        "kill primary": (0.03, "seed 9"),
    }
    assert summary.failover_times["pause primary long"] == [2.4, 8.0, 2.9]
    print_summary([summary])
    out = capsys.readouterr().out
    assert "slowest sqlite pause primary long: 8.000 s; seed 9" in out
