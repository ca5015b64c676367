"""The proxy's master rotation (confserv.server.rotation) as a state machine (hypothesis).

Invariants:

- without redirects, the masters are tried in the order of the list, round
  and round, and a whole round never starts less than ``retry`` seconds after
  the previous one ended; within a round, no attempt waits;
- a redirect is tried next, before the list's turn, and ends the attempt under
  way unless that attempt already follows the master it names;
- only the loss of a master being followed is reported as a loss;
- one attempt at a time.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.server.rotation import MasterRotation, RotationStateError, where

RETRY = 0.025
MASTERS = [("a", 1), ("b", 2), ("c", 3)]


def test_a_round_of_masters_then_a_wait() -> None:
    r = MasterRotation(MASTERS[:2], retry=RETRY)
    assert r.next_master(0.0) == ("a", 1)
    assert r.attempt_ended(0.0) is False
    assert r.next_master(0.0) == ("b", 2)  # no wait inside a round
    r.attempt_ended(0.01)
    assert r.next_master(0.02) is None
    assert r.next_deadline() == pytest.approx(0.01 + RETRY)
    assert r.next_master(0.01 + RETRY) == ("a", 1)
    r.followed()
    assert r.following == "a:1"
    assert r.redirect("a", 1) is False  # already following it
    assert r.redirect("b", 2) is True
    assert r.attempt_ended(1.0) is True  # it was following a:1
    assert r.next_master(1.0) == ("b", 2)  # the redirect, at once


def test_no_masters_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MasterRotation([], retry=RETRY)


class RotationRules(RuleBasedStateMachine):
    @initialize(n=st.integers(1, 3))
    def start(self, n: int) -> None:
        self.masters = MASTERS[:n]
        self.r = MasterRotation(self.masters, retry=RETRY)
        self.now = 0.0
        self.expected_turn = 0
        self.preferred: tuple[str, int] | None = None
        self.round_ended_at: float | None = None
        self.trying: tuple[str, int] | None = None
        self.following = False

    @rule(dt=st.floats(0, 0.05))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule()
    def try_next(self) -> None:
        if self.trying is not None:
            with pytest.raises(RotationStateError):
                self.r.next_master(self.now)
            return
        got = self.r.next_master(self.now)
        if got is None:
            deadline = self.r.next_deadline()
            assert deadline is not None
            assert self.now < deadline
            assert self.round_ended_at is not None
            assert deadline == pytest.approx(self.round_ended_at + RETRY)
            return
        if self.preferred is not None:
            assert got == self.preferred
            self.preferred = None
        else:
            assert got == self.masters[self.expected_turn % len(self.masters)]
        if self.round_ended_at is not None:
            assert self.now >= self.round_ended_at + RETRY - 1e-9
            self.round_ended_at = None
        self.trying = got

    @rule()
    def follow(self) -> None:
        if self.trying is None:
            with pytest.raises(RotationStateError):
                self.r.followed()
            return
        self.r.followed()
        self.following = True
        assert self.r.following == where(self.trying)

    @rule()
    def end(self) -> None:
        if self.trying is None:
            with pytest.raises(RotationStateError):
                self.r.attempt_ended(self.now)
            return
        assert self.r.attempt_ended(self.now) is self.following
        self.trying, self.following = None, False
        self.expected_turn += 1
        if self.preferred is None and self.expected_turn % len(self.masters) == 0:
            self.round_ended_at = self.now

    @rule(master=st.sampled_from(MASTERS))
    def redirect(self, master: tuple[str, int]) -> None:
        followed = self.following and self.trying == master
        ends = self.r.redirect(*master)
        assert ends is not followed
        if not followed:
            self.preferred = master

    @invariant()
    def one_attempt_at_a_time(self) -> None:
        assert self.r.trying == self.trying
        assert (self.r.next_deadline() is None) or self.trying is None


TestRotationRules = RotationRules.TestCase
TestRotationRules.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
