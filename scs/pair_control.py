"""A pair's operator-facing decisions: switchover, pause, resume, an operator's stop (pure).

:class:`PairControl` is the whole of one pair's supervision, the class the
core (:class:`scs.core.SupervisorCore`) holds per pair: the automatic
decisions of :class:`scs.failover.PairFailover` plus what operators ask.
A planned switchover demotes the primary, then promotes the backup without
force; a paused pair takes no automatic action (a failover under way is
dropped) but still obeys operators.
"""

from __future__ import annotations

from . import events
from .actions import Action, Demote, Promote
from .failover import PairFailover
from .pair_machine import DEMOTING_STATES, PairEvent
from .state import Member, emit

E = PairEvent


class PairControl(PairFailover):
    """One pair's supervision (see module docstring)."""

    def stopped_by_operator(self, m: Member) -> list[Action]:
        """An operator stopped ``m``: a failover towards it cannot go on."""
        out: list[Action] = []
        fo = self.failover
        if fo is not None and fo.target == m.name:
            old = self.peer(m)
            why = f"'{m.name}' was stopped by an operator"
            emit(out, events.NO_BACKUP, old, pair=self.name, server=old.name, why=why)
            self._end_failover(E.ABANDONED)
        return out

    def demote_done(self, m: Member, ok: bool, reason: str) -> list[Action]:
        """The answer to a Demote of ``m`` (a step-down, or a switchover's first half)."""
        out: list[Action] = []
        if self.stepping_down == m.name:
            self.stepping_down = None  # asked again at the next status if both still say primary
            if not ok:
                emit(out, events.ACTION_FAILED, m, action="step-down", server=m.name, reason=reason)
            return out
        if self.state not in DEMOTING_STATES:
            return out
        peer = self.peer(m)
        if not ok or peer.operator_stopped:
            why = reason if not ok else f"'{peer.name}' was stopped by an operator"
            self._switchover_failed(why, m, out)
            return out
        m.role = "backup"
        self.machine.fire(E.DEMOTED)
        out.append(Promote(peer.name, force=False))
        return out

    # -- operators --------------------------------------------------------------

    def switchover(self, who: str) -> list[Action]:
        """Planned switchover: demote the primary, then promote the backup."""
        out: list[Action] = []
        primary = self.primary()
        if not self.machine.can(E.SWITCHOVER):
            why = "a switchover or failover is already under way"
        elif primary is None:
            why = "no primary is connected"
        elif not (backup := self.peer(primary)).up_as("backup"):
            why = f"'{backup.name}' is not a connected backup"
        elif stopped := [m.name for m in (primary, backup) if m.operator_stopped]:
            why = f"'{stopped[0]}' was stopped by an operator"
        else:
            self.machine.fire(E.SWITCHOVER)
            self.switchover_result = ""
            emit(
                out,
                events.SWITCHOVER,
                primary,
                pair=self.name,
                who=who,
                primary=primary.name,
                backup=backup.name,
            )
            out.append(Demote(primary.name))
            return out
        self.switchover_result = f"failed: {why}"
        emit(out, events.SWITCHOVER_FAILED, None, pair=self.name, reason=why)
        return out

    def pause(self, who: str) -> list[Action]:
        """No automatic action until resumed (a failover under way is dropped)."""
        self.machine.fire(E.PAUSE)
        self.failover = None
        out: list[Action] = []
        emit(out, events.PAUSED, None, pair=self.name, who=who)
        return out

    def resume(self, who: str) -> list[Action]:
        """Automatic actions again (the core then schedules the held restarts)."""
        self.machine.fire(E.RESUME)
        out: list[Action] = []
        emit(out, events.RESUMED, None, pair=self.name, who=who)
        return out
