"""The role machine's epoch handling when answers come late and out of order (hypothesis).

The driver carries out one decision at a time, but the database's answers to
a take or a renewal may arrive long after they were asked, and the lease may
move on in between (another server forced it). Invariants:

- one promotion takes the lease once: no second take is asked while one is
  outstanding;
- a refused renewal of an epoch other than the current one changes nothing
  (found on SQLite: a late refusal for epoch 1 demoted the primary of epoch 2);
- the machine's epoch only increases, and it is writable only as primary and
  only before its lease may have run out.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from confserv.ha.roles import (
    Action,
    BecomeBackup,
    ReadLease,
    ReleaseLease,
    RenewLease,
    Role,
    RoleMachine,
    TakeLease,
)

TTL, RENEW = 2.0, 0.5


class LateAnswers(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.m = RoleMachine("me", ttl=TTL, renew=RENEW)
        self.now = 0.0
        self.db_epoch = 0
        self.takes: list[float] = []  # sent times of takes not answered yet
        self.renewals: list[tuple[int, float]] = []  # (epoch, sent)
        self.epochs_seen = [0]
        self.take(self.m.start())
        self.take(self.m.lease_read("other", True))  # starts as backup

    def take(self, actions: list[Action]) -> None:
        for action in actions:
            assert not isinstance(action, ReadLease) or not self.takes
            if isinstance(action, TakeLease):
                assert not self.takes, "a second take while one is outstanding"
                self.takes.append(self.now)
            elif isinstance(action, RenewLease):
                self.renewals.append((action.epoch, self.now))
            else:
                assert isinstance(action, BecomeBackup | ReleaseLease) or True

    @rule(force=st.booleans())
    def promote(self, force: bool) -> None:
        self.take(self.m.promote(force=force))

    @precondition(lambda self: bool(self.takes))
    @rule(ok=st.booleans())
    def take_answered(self, ok: bool) -> None:
        sent = self.takes.pop(0)
        if ok:
            self.db_epoch += 1
            self.take(self.m.lease_taken(self.db_epoch, sent, self.now))
        else:
            self.take(self.m.lease_refused("other"))

    @precondition(lambda self: bool(self.renewals))
    @rule(index=st.integers(0, 5), fenced=st.booleans())
    def renewal_answered(self, index: int, fenced: bool) -> None:
        epoch, sent = self.renewals.pop(index % len(self.renewals))
        before = (self.m.role, self.m.writable, self.m.epoch)
        if fenced or epoch != self.db_epoch:
            self.take(self.m.renew_fenced(epoch, "lease moved on"))
            if epoch != before[2]:
                assert (self.m.role, self.m.writable, self.m.epoch) == before
        else:
            self.take(self.m.renewed(epoch, sent, self.now))

    @rule()
    def lease_moves_on(self) -> None:
        self.db_epoch += 1  # another server forced it

    @rule(dt=st.floats(0.01, 1.5))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.take(self.m.tick(self.now))

    @invariant()
    def epochs_only_increase_and_writes_stop_in_time(self) -> None:
        assert self.m.epoch >= self.epochs_seen[-1]
        self.epochs_seen.append(self.m.epoch)
        if self.m.writable:
            assert self.m.role is Role.PRIMARY
            assert self.now < self.m.good_until - self.m.margin + 1e-9


LateAnswers.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestLateAnswers = LateAnswers.TestCase
