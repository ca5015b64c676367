"""The backup's follower (confserv.ha.follower) as a state machine (hypothesis).

Invariants:

- it follows only a valid lease of another process at an address that parses;
- after a refusal or a loss, the lease is not read again before ``retry`` seconds;
- while streaming, an acknowledgement is due at once, then ``ack_every`` after
  each answer, and its answer is due ``ack_timeout`` after it was sent: the
  deadline is always the earlier of the two that applies, never missing;
- it is caught up only while streaming, once memory reached the primary's
  serial, and stays so until the connection ends;
- an event out of order is refused (FollowerStateError) and changes nothing.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from confserv.ha.follower import Follower, FollowerStateError, Phase, Target, parse_address

RETRY, ACK_EVERY, ACK_TIMEOUT = 0.05, 0.3, 0.6

LEASES = st.sampled_from(
    [
        ("other", "backup", "127.0.0.1:2120:2121", True),
        ("other", "backup", "127.0.0.1:2120:2121", False),  # expired
        ("me", "me", "127.0.0.1:2130:2131", True),  # our own
        ("other", "backup", "garbled", True),
        ("", "", "", False),  # none, or the database unreachable
        ("third", "third", "[::1]:2140:2141", True),
    ]
)


def test_addresses_parse_into_three_parts() -> None:
    assert parse_address("h:1:2") == ("h", 1, 2)
    assert parse_address("[::1]:2140:2141") == ("[::1]", 2140, 2141)
    for bad in ("", "h:1", "h:x:2", ":1:2", "h:1:"):
        assert parse_address(bad) is None


def test_a_fresh_follower_reads_at_once_and_follows_the_holder() -> None:
    f = Follower("me", retry=RETRY, ack_every=ACK_EVERY, ack_timeout=ACK_TIMEOUT)
    assert f.next_deadline() is None
    assert f.may_read(0.0)
    target = f.lease_read("other", "backup", "h:1:2", True, 0.0)
    assert target == Target("backup", "h", 1, 2)
    assert (target.client_address, target.management_address) == ("h:1", "h:2")
    f.connected()
    f.replicated(upto=10, at=9, now=1.0)
    assert not f.caught_up
    assert f.ack_due(1.0)
    assert f.ack_sent(1.0) == 1.0 + ACK_TIMEOUT
    f.applied(10)
    assert f.caught_up
    f.ack_answered(1.2)
    assert f.next_deadline() == pytest.approx(1.2 + ACK_EVERY)
    f.lost(2.0)
    assert not f.caught_up
    assert f.next_deadline() == pytest.approx(2.0 + RETRY)
    assert not f.may_read(2.0 + RETRY / 2)


class FollowerRules(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.f = Follower("me", retry=RETRY, ack_every=ACK_EVERY, ack_timeout=ACK_TIMEOUT)
        self.now = 0.0
        self.not_before = 0.0  # no lease read before then
        self.memory = 0
        self.answered_at: float | None = None

    def refused(self, event: object) -> None:
        """An event out of order raises and leaves the machine as it was."""
        before = copy.copy(self.f.__dict__)
        with pytest.raises(FollowerStateError):
            event()  # type: ignore[operator]
        assert self.f.__dict__ == before

    @rule(dt=st.floats(0, 1))
    def time_passes(self, dt: float) -> None:
        deadline = self.f.next_deadline()
        if self.f.phase is Phase.STREAMING and deadline is not None:
            dt = min(dt, max(0.0, deadline - self.now))  # the glue never oversleeps a deadline
        self.now += dt

    @rule(lease=LEASES)
    def read_the_lease(self, lease: tuple[str, str, str, bool]) -> None:
        if not self.f.may_read(self.now):
            self.refused(lambda: self.f.lease_read(*lease, self.now))
            return
        assert self.now >= self.not_before
        key, _holder, address, valid = lease
        target = self.f.lease_read(*lease, self.now)
        followable = valid and key not in ("", "me") and parse_address(address) is not None
        assert (target is not None) == followable
        if target is None:
            self.not_before = self.now + RETRY
            assert self.f.next_deadline() == pytest.approx(self.not_before)

    @rule()
    def connect(self) -> None:
        if self.f.phase is not Phase.CONNECTING:
            self.refused(self.f.connected)
            return
        self.f.connected()

    @rule(ahead=st.integers(0, 3), missing=st.integers(0, 3))
    def first_answer(self, ahead: int, missing: int) -> None:
        upto = self.memory + ahead
        at = upto - min(missing, ahead)
        if self.f.phase is not Phase.REPLICATING:
            self.refused(lambda: self.f.replicated(upto, at, self.now))
            return
        self.memory = at
        self.f.replicated(upto, at, self.now)
        self.answered_at = self.now
        assert self.f.ack_due(self.now)  # the first acknowledgement at once

    @rule()
    def a_change_is_applied(self) -> None:
        if self.f.phase is not Phase.STREAMING:
            self.refused(lambda: self.f.applied(self.memory + 1))
            return
        was = self.f.caught_up
        self.memory += 1
        self.f.applied(self.memory)
        assert self.f.caught_up or not was  # once caught up, it stays

    @rule()
    def send_an_ack(self) -> None:
        if not self.f.ack_due(self.now):
            self.refused(lambda: self.f.ack_sent(self.now))
            return
        assert self.f.ack_sent(self.now) == pytest.approx(self.now + ACK_TIMEOUT)

    @rule()
    def the_ack_is_answered(self) -> None:
        answer_by = self.f.ack_answer_by
        if self.f.phase is not Phase.STREAMING or answer_by is None or self.now > answer_by:
            self.refused(lambda: self.f.ack_answered(self.now))
            return
        self.f.ack_answered(self.now)
        self.answered_at = self.now
        assert self.f.next_deadline() == pytest.approx(self.now + ACK_EVERY)

    @rule()
    def the_connection_is_lost(self) -> None:
        if self.f.phase is Phase.WAITING:
            self.refused(lambda: self.f.lost(self.now))
            return
        self.f.lost(self.now)
        self.not_before = self.now + RETRY

    @precondition(lambda self: self.f.ack_answer_by is not None)
    @rule()
    def the_ack_times_out(self) -> None:
        assert self.f.ack_answer_by is not None
        self.now = max(self.now, self.f.ack_answer_by)
        self.f.lost(self.now)  # the glue's fail_at ends the connection
        self.not_before = self.now + RETRY

    @invariant()
    def deadlines_follow_the_phase(self) -> None:
        f = self.f
        deadline = f.next_deadline()
        if f.phase in (Phase.CONNECTING, Phase.REPLICATING):
            assert deadline is None
        elif f.phase is Phase.STREAMING:
            assert deadline is not None
            if f.ack_answer_by is None:
                assert self.answered_at is not None
                assert deadline <= self.answered_at + ACK_EVERY + 1e-9
        elif deadline is not None:
            assert deadline == pytest.approx(self.not_before)

    @invariant()
    def caught_up_only_while_streaming_and_at_the_primary_serial(self) -> None:
        f = self.f
        if f.caught_up:
            assert f.phase is Phase.STREAMING
            assert f.upto is not None
            assert self.memory >= f.upto
        if f.phase is Phase.STREAMING and f.upto is not None and self.memory >= f.upto:
            assert f.caught_up

    @invariant()
    def the_target_is_never_this_process(self) -> None:
        if self.f.phase is not Phase.WAITING:
            assert self.f.target is not None
            assert self.f.target.holder != "me"


TestFollowerRules = FollowerRules.TestCase
TestFollowerRules.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
