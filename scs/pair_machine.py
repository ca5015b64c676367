"""A pair's states and every transition between them, in one table (pure).

A pair is always in exactly one :class:`PairState`: nothing under way, a
failover waiting or promoting, a switchover demoting or promoting, or paused
(with or without an operator's switchover going on: a paused pair takes no
automatic action, but operators still may act). :data:`TRANSITIONS` maps
``(state, event)`` to the next state; :meth:`PairMachine.fire` refuses
anything else with :class:`IllegalTransition`. The decisions of *when* to
fire an event are in :mod:`scs.failover`; this module only says what may
follow what.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator


class PairState(enum.Enum):
    """What a pair is doing."""

    #: Watching; nothing under way.
    IDLE = "idle"
    #: A failover is decided: waiting for its promotion (failover-wait, promote-retry).
    FAILOVER_WAITING = "failover-waiting"
    #: A failover's Promote is in flight.
    FAILOVER_PROMOTING = "failover-promoting"
    #: An operator's switchover: the primary is being demoted.
    SWITCHOVER_DEMOTING = "switchover-demoting"
    #: An operator's switchover: the old primary is backup, the other is being promoted.
    SWITCHOVER_PROMOTING = "switchover-promoting"
    #: Paused by an operator: no automatic action.
    PAUSED = "paused"
    #: Paused, while an operator's switchover demotes the primary.
    PAUSED_DEMOTING = "paused-demoting"
    #: Paused, while an operator's switchover promotes the backup.
    PAUSED_PROMOTING = "paused-promoting"


class PairEvent(enum.Enum):
    """What moves a pair from one state to another."""

    #: The primary's link was lost while its process may live: fail over after the wait.
    SILENCE = "silence"
    #: No primary for a while (both backup, or one backup and the other silent).
    NO_PRIMARY = "no-primary"
    #: The primary's process was seen to exit (proof of death): force-promote at once.
    DEATH = "death"
    #: The failover's Promote was sent.
    PROMOTE_SENT = "promote-sent"
    #: The failover's Promote was refused: try again after promote-retry.
    REFUSED = "refused"
    #: The old primary is primary again: no failover.
    CANCELLED = "cancelled"
    #: The failover cannot go on: its target was stopped by an operator.
    ABANDONED = "abandoned"
    #: The failover's target is primary.
    PROMOTED = "promoted"
    #: An operator asked for a switchover: demote the primary.
    SWITCHOVER = "switchover"
    #: The switchover's demotion is done: promote the other.
    DEMOTED = "demoted"
    #: The switchover is over, done or failed.
    SWITCHOVER_ENDED = "switchover-ended"
    #: An operator paused the pair (a failover under way is dropped).
    PAUSE = "pause"
    #: An operator resumed the pair.
    RESUME = "resume"


S, E = PairState, PairEvent

#: Every transition a pair may make: ``(state, event) -> next state``.
TRANSITIONS: dict[tuple[PairState, PairEvent], PairState] = {
    # nothing under way
    (S.IDLE, E.SILENCE): S.FAILOVER_WAITING,
    (S.IDLE, E.NO_PRIMARY): S.FAILOVER_WAITING,
    (S.IDLE, E.DEATH): S.FAILOVER_PROMOTING,
    (S.IDLE, E.SWITCHOVER): S.SWITCHOVER_DEMOTING,
    (S.IDLE, E.PAUSE): S.PAUSED,
    (S.IDLE, E.RESUME): S.IDLE,
    # a failover, waiting for its promotion
    (S.FAILOVER_WAITING, E.PROMOTE_SENT): S.FAILOVER_PROMOTING,
    (S.FAILOVER_WAITING, E.DEATH): S.FAILOVER_PROMOTING,
    (S.FAILOVER_WAITING, E.PROMOTED): S.IDLE,
    (S.FAILOVER_WAITING, E.CANCELLED): S.IDLE,
    (S.FAILOVER_WAITING, E.ABANDONED): S.IDLE,
    (S.FAILOVER_WAITING, E.PAUSE): S.PAUSED,
    (S.FAILOVER_WAITING, E.RESUME): S.FAILOVER_WAITING,
    # a failover, its Promote in flight
    (S.FAILOVER_PROMOTING, E.REFUSED): S.FAILOVER_WAITING,
    (S.FAILOVER_PROMOTING, E.DEATH): S.FAILOVER_PROMOTING,
    (S.FAILOVER_PROMOTING, E.PROMOTED): S.IDLE,
    (S.FAILOVER_PROMOTING, E.CANCELLED): S.IDLE,
    (S.FAILOVER_PROMOTING, E.ABANDONED): S.IDLE,
    (S.FAILOVER_PROMOTING, E.PAUSE): S.PAUSED,
    (S.FAILOVER_PROMOTING, E.RESUME): S.FAILOVER_PROMOTING,
    # an operator's switchover (a death during it turns it into a failover)
    (S.SWITCHOVER_DEMOTING, E.DEMOTED): S.SWITCHOVER_PROMOTING,
    (S.SWITCHOVER_DEMOTING, E.SWITCHOVER_ENDED): S.IDLE,
    (S.SWITCHOVER_DEMOTING, E.DEATH): S.FAILOVER_PROMOTING,
    (S.SWITCHOVER_DEMOTING, E.PAUSE): S.PAUSED_DEMOTING,
    (S.SWITCHOVER_DEMOTING, E.RESUME): S.SWITCHOVER_DEMOTING,
    (S.SWITCHOVER_PROMOTING, E.SWITCHOVER_ENDED): S.IDLE,
    (S.SWITCHOVER_PROMOTING, E.DEATH): S.FAILOVER_PROMOTING,
    (S.SWITCHOVER_PROMOTING, E.PAUSE): S.PAUSED_PROMOTING,
    (S.SWITCHOVER_PROMOTING, E.RESUME): S.SWITCHOVER_PROMOTING,
    # paused: operators' commands only
    (S.PAUSED, E.SWITCHOVER): S.PAUSED_DEMOTING,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.RESUME): S.IDLE,
    (S.PAUSED_DEMOTING, E.DEMOTED): S.PAUSED_PROMOTING,
    (S.PAUSED_DEMOTING, E.SWITCHOVER_ENDED): S.PAUSED,
    (S.PAUSED_DEMOTING, E.PAUSE): S.PAUSED_DEMOTING,
    (S.PAUSED_DEMOTING, E.RESUME): S.SWITCHOVER_DEMOTING,
    (S.PAUSED_PROMOTING, E.SWITCHOVER_ENDED): S.PAUSED,
    (S.PAUSED_PROMOTING, E.PAUSE): S.PAUSED_PROMOTING,
    (S.PAUSED_PROMOTING, E.RESUME): S.SWITCHOVER_PROMOTING,
}

#: Where every pair starts.
INITIAL = PairState.IDLE

PAUSED_STATES = frozenset({S.PAUSED, S.PAUSED_DEMOTING, S.PAUSED_PROMOTING})
FAILOVER_STATES = frozenset({S.FAILOVER_WAITING, S.FAILOVER_PROMOTING})
SWITCHOVER_STATES = frozenset(
    {S.SWITCHOVER_DEMOTING, S.SWITCHOVER_PROMOTING, S.PAUSED_DEMOTING, S.PAUSED_PROMOTING}
)
DEMOTING_STATES = frozenset({S.SWITCHOVER_DEMOTING, S.PAUSED_DEMOTING})
PROMOTING_STATES = frozenset({S.SWITCHOVER_PROMOTING, S.PAUSED_PROMOTING})


class IllegalTransition(RuntimeError):
    """A pair was asked to make a transition that is not in :data:`TRANSITIONS`."""

    def __init__(self, pair: str, state: PairState, event: PairEvent) -> None:
        super().__init__(f"pair {pair!r}: no transition from {state.value} on {event.value}")
        self.pair, self.state, self.event = pair, state, event


class PairMachine:
    """One pair's state, moved only through :data:`TRANSITIONS`."""

    def __init__(self, pair: str, state: PairState = INITIAL) -> None:
        self.pair = pair
        self.state = state

    def can(self, event: PairEvent) -> bool:
        """Whether ``event`` is a transition from the current state."""
        return (self.state, event) in TRANSITIONS

    def fire(self, event: PairEvent) -> PairState:
        """Make the transition for ``event``; the new state. Raises :class:`IllegalTransition`
        (and stays put) when the table has none."""
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise IllegalTransition(self.pair, self.state, event) from None
        return self.state

    @property
    def paused(self) -> bool:
        """Whether the pair is paused (no automatic action)."""
        return self.state in PAUSED_STATES

    @property
    def failing_over(self) -> bool:
        """Whether a failover is under way."""
        return self.state in FAILOVER_STATES

    @property
    def switching(self) -> bool:
        """Whether an operator's switchover is under way."""
        return self.state in SWITCHOVER_STATES


def reachable(start: PairState = INITIAL) -> set[PairState]:
    """Every state the table can reach from ``start``."""
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for nxt in _successors(state):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _successors(state: PairState) -> Iterator[PairState]:
    return (nxt for (src, _event), nxt in TRANSITIONS.items() if src == state)
