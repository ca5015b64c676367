"""Commit uncertainty (confserv.core.commit_guard) as a state machine (hypothesis).

The model is a database that the guard's write path talks to: commits land or
not, answers get lost, memory misses changes, catch-ups fail. Invariants:

- a commit is never sent while a change that may have landed is missing from
  memory: after an unknown outcome, or a gap that could not be closed, the next
  commit is preceded by a successful catch-up (memory *known* to be behind is
  the database's serial check's to refuse);
- a gap after a commit is closed from the History Log at once;
- a stale-memory refusal is retried once per write, after a catch-up;
- a fenced commit stops writes;
- one commit at a time: an event out of order is refused.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.core.commit_guard import (
    CatchUp,
    CommitGuard,
    CommitGuardError,
    Memory,
    Outcome,
    Retry,
    StopWrites,
)


class CommitRules(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.g = CommitGuard()
        self.db = 0  # serial in the database
        self.memory = 0  # serial in memory
        self.maybe_missing = False  # the model: memory may lack what the database has
        self.committing = False
        self.retries = 0

    def catch_up(self, ok: bool) -> None:
        if ok:
            self.memory = self.db
            self.maybe_missing = False
            self.g.caught_up()
        else:
            self.g.catch_up_failed()

    @rule()
    def a_write_begins(self) -> None:
        if self.committing:
            with pytest.raises(CommitGuardError):
                self.g.write()
            return
        self.g.write()
        self.retries = 0

    @rule(catch_up_works=st.booleans())
    def a_commit_is_sent(self, catch_up_works: bool) -> None:
        if self.committing:
            with pytest.raises(CommitGuardError):
                self.g.before_commit()
            return
        actions = self.g.before_commit()
        assert (actions != []) is self.maybe_missing  # catch up exactly when in doubt
        if actions:
            assert isinstance(actions[0], CatchUp)
            self.catch_up(catch_up_works)
            if not catch_up_works:
                with pytest.raises(CommitGuardError):
                    self.g.sending()  # the write fails: nothing is sent in doubt
                return
        assert self.memory == self.db or not self.maybe_missing
        self.g.sending()
        self.committing = True

    @rule(
        outcome=st.sampled_from(list(Outcome)),
        landed=st.booleans(),
        applies=st.booleans(),
        gap_closes=st.booleans(),
    )
    def the_commit_ends(
        self, outcome: Outcome, landed: bool, applies: bool, gap_closes: bool
    ) -> None:
        if not self.committing:
            with pytest.raises(CommitGuardError):
                self.g.ended(outcome)
            return
        self.committing = False
        actions = self.g.ended(outcome)
        if outcome is Outcome.UNKNOWN:
            assert actions == []
            if landed:
                self.db += 1
            self.maybe_missing = True
        elif outcome is Outcome.FENCED:
            assert actions == [StopWrites()]
        elif outcome is Outcome.STALE_MEMORY:
            assert actions == []
            # Another commit landed that memory has not seen. The database's serial
            # check refuses every commit from memory this far behind: no doubt to
            # keep, only a catch-up and a retry to make.
            self.db += 1
            again = self.g.stale_memory()
            if self.retries == 0:
                assert again == [CatchUp("the database is ahead of memory"), Retry()]
                self.retries += 1
                self.catch_up(ok=True)
            else:
                assert again == []  # refused twice: the refusal is the answer
        elif outcome is Outcome.COMMITTED:
            assert actions == []
            self.db += 1
            if applies and self.memory == self.db - 1:
                self.memory = self.db
            else:
                gap = self.g.apply_missed()
                assert gap
                assert isinstance(gap[0], CatchUp)
                self.maybe_missing = True
                self.catch_up(gap_closes)
        else:
            assert actions == []

    @invariant()
    def doubt_is_known(self) -> None:
        if self.maybe_missing and self.memory != self.db:
            assert self.g.uncertain or self.committing
        assert (self.g.memory is Memory.COMMITTING) is self.committing


TestCommitRules = CommitRules.TestCase
TestCommitRules.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_an_unknown_outcome_makes_the_next_commit_catch_up_first() -> None:
    g = CommitGuard()
    g.write()
    assert g.before_commit() == []
    g.sending()
    assert g.ended(Outcome.UNKNOWN) == []
    g.write()
    assert isinstance(g.before_commit()[0], CatchUp)
    g.catch_up_failed()  # still unreachable: still in doubt
    assert g.uncertain
    g.caught_up()
    assert g.before_commit() == []


def test_stale_memory_is_retried_once_per_write() -> None:
    g = CommitGuard()
    g.write()
    for expected in ([CatchUp("the database is ahead of memory"), Retry()], []):
        g.before_commit()
        g.sending()
        g.ended(Outcome.STALE_MEMORY)
        assert g.stale_memory() == expected
        if expected:
            g.caught_up()
    with pytest.raises(CommitGuardError):
        g.stale_memory()  # only after a stale refusal
