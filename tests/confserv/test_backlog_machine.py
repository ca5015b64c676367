"""Subscriber back-pressure (confserv.core.backlog) as a state machine (hypothesis), and the
subscription that uses it.

Invariants:

- a subscriber never has more than ``limit`` changes waiting;
- it is cut off exactly when one more change would pass ``limit``, and once
  cut off it takes nothing more, for good;
- what it is behind never goes below zero, and a write or flush that left
  nothing unsent leaves it behind by nothing.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.core import fanout
from confserv.core.backlog import Backlog
from confserv.store.base import Change


class BacklogRules(RuleBasedStateMachine):
    @initialize(limit=st.integers(1, 6))
    def start(self, limit: int) -> None:
        self.b = Backlog(limit)
        self.limit = limit
        self.waiting = 0  # the model: changes queued and not yet written or read
        self.cut = False

    @rule()
    def a_change_is_queued(self) -> None:
        taken = self.b.queued()
        if self.cut or self.waiting >= self.limit:
            assert not taken
            self.cut = True
        else:
            assert taken
            self.waiting += 1

    @rule()
    def everything_is_written(self) -> None:
        self.b.written()
        self.waiting = 0

    @rule(started_with=st.integers(0, 8), unsent=st.integers(0, 3))
    def a_flush_ends(self, started_with: int, unsent: int) -> None:
        started_with = min(started_with, self.waiting)
        self.b.flushed(started_with, unsent)
        self.waiting = 0 if unsent == 0 else self.waiting - started_with

    @rule(taken=st.integers(0, 8))
    def the_reader_takes_some(self, taken: int) -> None:
        self.waiting = max(0, self.waiting - taken)
        self.b.unread(self.waiting)

    @invariant()
    def never_more_than_the_limit_waits(self) -> None:
        assert 0 <= self.b.behind <= self.limit
        assert self.b.behind == self.waiting
        assert self.b.cut_off is self.cut


TestBacklogRules = BacklogRules.TestCase
TestBacklogRules.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def prepared(serial: int) -> fanout.Outgoing:
    """An added Host with ``serial``, prepared for one publish."""
    added = Change(serial, 1, "add", "Host", serial, {"type": "Host", "dbid": serial}, 0.0)
    return fanout.NotificationCache().outgoing(added)


def test_a_queue_reader_that_reads_nothing_is_cut_off_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "SUBSCRIBER_BUFFER", 3)
    sub = fanout.Subscription(everything=True)
    assert [sub.offer(prepared(i)) for i in range(1, 5)] == [True, True, True, False]
    assert sub.overflowed
    # A reader that keeps up is never cut off.
    sub = fanout.Subscription(everything=True)
    for i in range(1, 20):
        assert sub.offer(prepared(i))
        assert sub.receive.receive_nowait().serial == i
    assert not sub.overflowed


def test_a_gone_reader_drops_the_subscription_without_overflow() -> None:
    sub = fanout.Subscription(everything=True)
    sub.receive.close()
    assert not sub.offer(prepared(1))
    assert not sub.overflowed


def test_a_failing_deliver_drops_only_that_subscriber(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: fanout.Outgoing) -> bool:
        raise RuntimeError("boom")

    sub = fanout.Subscription(everything=True, deliver=broken)
    assert not sub.offer(prepared(1))
    assert "delivering serial 1" in caplog.text
    with pytest.raises(trio.WouldBlock):
        sub.receive.receive_nowait()  # delivered ones never go to the queue
