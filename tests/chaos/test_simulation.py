"""The checker the simulation (:mod:`tests.sim`) and the real runs share catches every kind of
violation; ``make chaos``'s simulated part runs :mod:`tests.sim` and counts what it found.

The simulation's own slice, replay and mutation checks are in ``tests/sim/test_schedules.py``.
"""

from __future__ import annotations

from ..sim.run import run_many
from .checker import Fault, Record, Request, check


def test_make_chaos_runs_the_simulation_of_the_real_code() -> None:
    summary = run_many(3, 1, workers=1)
    assert summary.engine == "simulated"
    assert summary.schedules == 3
    assert summary.violations == []
    assert summary.requests > 0
    assert sum(summary.faults.values()) >= 3


def test_the_checker_catches_each_kind_of_violation() -> None:
    record = Record(detection_bound=1.0)
    record.requests = [
        Request("c", "write", 0, 0, "ok", serial=1, epoch=1, server="a", key="k1"),
        Request("c", "write", 0, 0, "ok", serial=2, epoch=1, server="b", key="k2"),
        Request("c", "write", 0, 0, "ok", serial=3, epoch=0, server="a", key="k3"),
        Request("c", "read", 0, 1, "ok", serial=3),
        Request("c", "read", 1, 2, "ok", serial=2),
    ]
    record.committed = {"k1", "k2"}
    record.promotions = [(0.0, 1, "a"), (5.0, 1, "b")]
    record.faults = [Fault("pause", "a", 4.5, 0.3)]
    text = "\n".join(check(record))
    assert "k3 (serial 3) is missing" in text
    assert "two servers accepted writes in epoch 1" in text
    assert "from epoch 0 after epoch 1" in text
    assert "saw serial go back" in text
    assert "epochs did not only increase" in text
    assert "caused a failover" in text


def test_a_fault_with_its_own_bound_is_judged_by_it() -> None:
    def judged(duration: float) -> list[str]:
        record = Record(detection_bound=2.0)
        record.promotions = [(0.0, 1, "a"), (10.8, 2, "b")]
        record.faults = [Fault("db-stall", "database", 10.0, duration, bound=1.4)]
        return check(record)

    assert "db-stall of database for 0.500 s (< its bound 1.4 s)" in "\n".join(judged(0.5))
    assert judged(1.5) == []  # longer than its bound: a failover is allowed
    kill = Record(detection_bound=2.0, promotions=[(0.0, 1, "a"), (10.1, 2, "b")])
    kill.faults = [Fault("kill", "primary", 10.0, 0.0)]
    assert check(kill) == []  # a kill is meant to cause a failover


def test_a_request_never_answered_is_a_violation() -> None:
    record = Record(detection_bound=2.0)
    record.requests = [Request("p", "write", 10.0, 40.0, "hung", key="k")]
    assert check(record) == ["client p's write got no answer within 30 s"]
