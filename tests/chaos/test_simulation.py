"""The deterministic simulation finds nothing wrong, and its checker does catch violations."""

from __future__ import annotations

from .checker import Fault, Record, Request, check
from .simulation import run_schedule


def test_simulated_schedules_hold_every_invariant() -> None:
    failovers = 0
    for seed in range(1, 61):
        record, violations = run_schedule(seed)
        assert violations == [], f"seed {seed}: {violations}"
        failovers += record.failovers
    assert failovers > 0  # the schedules do exercise failovers


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
