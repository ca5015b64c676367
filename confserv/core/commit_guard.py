"""When memory must catch up with the database around a commit: a pure machine.

The write path of :class:`~confserv.core.service.ConfigService` validates
against memory, commits in the database, then applies the change to memory. Memory must stay
the database's, serial for serial. :class:`CommitGuard` is told how each
commit and each catch-up ended and says when memory must first be caught up
from the History Log. Nothing here reads a clock or touches IO; the decisions
are by outcome alone, so there is no deadline.

Rules:

- A commit whose outcome is unknown (the database unreachable, a connection
  lost after COMMIT was sent, anything unforeseen) may have landed: the next
  commit is preceded by a catch-up, and waits until one succeeds.
- A commit that landed but that memory could not take (a gap: memory missed
  a change) is closed from the History Log at once; if that catch-up fails,
  the next commit catches up first, as after an unknown outcome.
- A commit the database refused wrote nothing. When it was refused because
  the database is ahead of memory (another commit landed that memory has not
  seen), memory catches up and the write is validated and committed once
  more; refused so a second time, the refusal is the answer.
- A commit refused for a newer epoch fences this server: writes stop.
- One commit at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CommitGuardError(Exception):
    """An event out of order (a bug in the write path around the guard)."""


class Outcome(enum.Enum):
    """How one commit ended."""

    #: Committed; the answer names the change.
    COMMITTED = "committed"
    #: Refused by the database (a constraint, a missing object): nothing written.
    REFUSED = "refused"
    #: Refused because the database is ahead of memory: nothing written.
    STALE_MEMORY = "stale-memory"
    #: Refused for an older epoch: nothing written, and this server is fenced.
    FENCED = "fenced"
    #: No answer: it may or may not have landed.
    UNKNOWN = "unknown"


class Memory(enum.Enum):
    """What is known of memory against the database."""

    #: Memory holds every change this server committed.
    SETTLED = "settled"
    #: A commit is under way.
    COMMITTING = "committing"
    #: A commit's outcome is unknown, or a gap could not be closed: catch up first.
    UNCERTAIN = "uncertain"
    #: A committed change could not be applied: catch up now.
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Action: apply every change the History Log has beyond memory."""

    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Action: validate the write against memory again and commit it once more."""


@dataclass(frozen=True, slots=True)
class StopWrites:
    """Action: accept no more writes (the lease moved on)."""


Action = CatchUp | Retry | StopWrites


class CommitGuard:
    """Commit uncertainty of one write path (see module docstring)."""

    def __init__(self) -> None:
        self.memory = Memory.SETTLED
        self._retried = False
        self._last: Outcome | None = None

    @property
    def uncertain(self) -> bool:
        """Whether memory must catch up before the next commit."""
        return self.memory in (Memory.UNCERTAIN, Memory.GAP)

    def write(self) -> None:
        """A new write begins (it may retry once after a stale-memory refusal)."""
        if self.memory is Memory.COMMITTING:
            raise CommitGuardError("a write began while a commit was under way")
        self._retried = False
        self._last = None

    def before_commit(self) -> list[Action]:
        """A commit is about to be sent: catch up first if its predecessor left doubt."""
        if self.memory is Memory.COMMITTING:
            raise CommitGuardError("one commit at a time")
        if self.uncertain:
            return [CatchUp("an earlier commit's outcome is unknown: it may have landed")]
        return []

    def sending(self) -> None:
        """The commit goes out (memory is settled)."""
        if self.memory is not Memory.SETTLED:
            raise CommitGuardError(f"a commit sent while memory is {self.memory.value}")
        self.memory = Memory.COMMITTING

    def ended(self, outcome: Outcome) -> list[Action]:
        """The commit ended with ``outcome``."""
        if self.memory is not Memory.COMMITTING:
            raise CommitGuardError("no commit under way")
        self._last = outcome
        if outcome is Outcome.UNKNOWN:
            self.memory = Memory.UNCERTAIN
            return []
        self.memory = Memory.SETTLED
        if outcome is Outcome.FENCED:
            return [StopWrites()]
        return []

    def stale_memory(self) -> list[Action]:
        """After a stale-memory refusal: catch up and retry, the first time in this write."""
        if self._last is not Outcome.STALE_MEMORY:
            raise CommitGuardError("the last commit was not refused as stale")
        self._last = None
        if self._retried:
            return []  # refused twice: the refusal is the answer
        self._retried = True
        return [CatchUp("the database is ahead of memory"), Retry()]

    def apply_missed(self) -> list[Action]:
        """The committed change could not be applied: memory missed a change."""
        if self.memory is not Memory.SETTLED:
            raise CommitGuardError(f"applied a commit while memory is {self.memory.value}")
        self.memory = Memory.GAP
        return [CatchUp("memory missed a change: closing the gap from the History Log")]

    def caught_up(self) -> None:
        """A catch-up succeeded: memory holds everything the database has."""
        if self.memory is Memory.COMMITTING:
            raise CommitGuardError("caught up while a commit was under way")
        self.memory = Memory.SETTLED

    def catch_up_failed(self) -> None:
        """A catch-up failed (the database unreachable): the next commit catches up first."""
        if self.memory is Memory.COMMITTING:
            raise CommitGuardError("a catch-up failed while a commit was under way")
        if self.memory is Memory.GAP:
            self.memory = Memory.UNCERTAIN
