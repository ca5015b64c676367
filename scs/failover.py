"""One pair's automatic decisions: failover, fencing, split brain (pure).

:class:`PairFailover` is the automatic half of a pair's decisions (the
operators' half is :class:`scs.pair_control.PairControl`). It decides from
what the core saw of the two members (``shared/docs/design.md``: fast when
certain, safe when uncertain):

- The primary's process exited (the supervisor saw it, :mod:`scs.proof`):
  the backup is force-promoted at once.
- The primary went silent while its process may live: after
  ``failover-wait`` the backup is asked to promote without force, again
  every ``promote-retry``; it refuses until the old primary's lease has
  expired. A primary that comes back within the wait cancels it.
- A silent primary that still blocks the failover is fenced (killed, when
  it is the process the supervisor watches) after ``fence-after``.
- No primary for :data:`NO_PRIMARY_GRACE` seconds: the backup further ahead
  is promoted, without force (the lease decides).
- Both members reporting primary is split brain: the older epoch is told to
  step down.
- A member an operator stopped is never promoted, fenced or told to step
  down, and proxies are not redirected to it.

Every state change goes through the machine's table; the core only routes.
"""

from __future__ import annotations

from . import events, proof
from .actions import Action, Demote, Fence, Promote
from .pair import Failover, PairBase
from .pair_machine import (
    PROMOTING_STATES,
    PairEvent,
    PairState,
)
from .state import Member, ProcessState, emit
from .status import ServerStatus

#: Seconds both members may report backup before one is promoted.
NO_PRIMARY_GRACE = 2.0

E = PairEvent


class PairFailover(PairBase):
    """A pair's automatic decisions (see module docstring)."""

    # -- what happened to a member ------------------------------------------------

    def exited(
        self, m: Member, pid: int, how: str, was_primary: bool, answered: bool, now: float
    ) -> list[Action]:
        """``m``'s watched process ``pid`` exited (proof of death); ``was_primary``: it
        answered as primary, ``answered``: as that very pid."""
        fo = self.failover
        # The process that answered as primary died: force. A process that never
        # answered so proves nothing about the one that did.
        primary_died = (was_primary and answered) or (
            fo is not None and fo.old == m.name and fo.old_pid == pid
        )
        out: list[Action] = []
        if primary_died and not self.paused:
            self._force(m, how, now, out)
        return out

    def _force(self, dead: Member, how: str, now: float, out: list[Action]) -> None:
        target = self.peer(dead)
        fo = self.failover
        if fo is not None and fo.target == target.name and fo.force:
            return
        why = ""
        if target.process != ProcessState.RUNNING and target.pid is None and not target.link:
            why = f"'{target.name}' is not running"
        elif target.operator_stopped:
            why = f"'{target.name}' was stopped by an operator"
        if why:
            emit(out, events.NO_BACKUP, dead, pair=self.name, server=dead.name, why=why)
            return
        detected = fo.detected_at if fo is not None else now
        if fo is None or not fo.force:  # also when its silence was noticed a moment earlier
            emit(out, events.FAILOVER_EXIT, dead, pair=self.name, server=dead.name, how=how)
        if self.machine.switching:  # it ends in this failover
            why = f"'{dead.name}' died: failing over instead"
            self.switchover_result = f"failed: {why}"
            emit(out, events.SWITCHOVER_FAILED, dead, pair=self.name, reason=why)
        emit(out, events.DECIDED_FORCE, target, pair=self.name, server=target.name)
        self.machine.fire(E.DEATH)
        self.failover = Failover(target.name, True, detected, now, decided=True, old=dead.name)
        out.append(Promote(target.name, force=True, over_epoch=dead.epoch or None))

    def silent(
        self, m: Member, was_primary: bool, reason: str, now: float, *, abrupt: bool = False
    ) -> list[Action]:
        """``m``'s link was lost (``was_primary``: it was up as primary; ``abrupt``: closed
        or reset by its end, so its watched process's exit may be on its way)."""
        out: list[Action] = []
        if not was_primary or self.state is not PairState.IDLE:
            return out  # paused, or a failover or switchover under way
        target = self.peer(m)
        if target.operator_stopped:
            why = f"'{target.name}' was stopped by an operator"
            emit(out, events.NO_BACKUP, m, pair=self.name, server=m.name, why=why)
            return out
        wait = m.spec.failover_wait
        grace = proof.exit_grace(abrupt, m.watched is not None)
        if not grace:
            self._tell_silence(m.name, reason, wait, out)
        self.machine.fire(E.SILENCE)
        self.failover = Failover(
            target.name,
            False,
            now,
            now + max(wait, grace),
            old=m.name,
            old_pid=m.reported,
            untold=reason if grace else None,  # told when the grace ends without an exit
        )
        self._due_promotion(now, out)
        return out

    def _tell_silence(self, server: str, reason: str, wait: float, out: list[Action]) -> None:
        emit(
            out,
            events.FAILOVER_SILENT,
            self._member(server),
            pair=self.name,
            server=server,
            reason=reason,
            wait=wait,
        )

    def seen(self, m: Member, now: float) -> list[Action]:
        """A status from ``m`` was recorded."""
        out: list[Action] = []
        fo = self.failover
        if fo is not None and fo.old == m.name and m.role == "primary":
            if self.state is PairState.FAILOVER_WAITING:
                # The old primary answers as primary again (back within the wait, or
                # restarted before the promotion went through): nothing to fail over.
                if fo.untold is None:  # (a silence never told needs no "back" either)
                    emit(out, events.FAILOVER_CANCELLED, m, pair=self.name, server=m.name)
                self._end_failover(E.CANCELLED)
        elif fo is not None and fo.target == m.name and m.role == "primary":
            self._promoted(m, now, out)
        a, b = self.a, self.b
        if a.up_as("primary") and b.up_as("primary"):
            if not self.split_alarmed:
                self.split_alarmed = True
                emit(
                    out,
                    events.SPLIT_BRAIN,
                    m,
                    pair=self.name,
                    a=a.name,
                    ea=a.epoch,
                    b=b.name,
                    eb=b.epoch,
                )
            self._step_down(out)
        elif self.split_alarmed:
            self.split_alarmed = False
        if a.link and b.link and {a.role, b.role} == {"primary", "backup"}:
            primary, backup = (a, b) if a.role == "primary" else (b, a)
            fields = {"pair": self.name, "primary": primary.name, "backup": backup.name}
            if self.owes_healthy:
                self.owes_healthy, self.seen_healthy = False, True
                emit(out, events.HEALTHY, m, **fields)
            elif not self.seen_healthy:
                self.seen_healthy = True  # an operator's "is it up?" answered in the log
                emit(out, events.PAIR_HEALTHY, m, **fields)
        return out

    def _step_down(self, out: list[Action]) -> None:
        """Both report primary: the one with the older epoch is told to step down."""
        if self.paused or self.machine.switching or self.stepping_down is not None:
            return
        which = proof.older_primary(self.a.epoch, self.b.epoch)
        if which is None:
            return  # equal or unknown epochs: no way to tell which is right (40310 stands)
        old, new = (self.a, self.b) if which == 0 else (self.b, self.a)
        if old.operator_stopped:
            return  # it is being stopped
        self.stepping_down = old.name
        emit(
            out,
            events.STEP_DOWN,
            old,
            pair=self.name,
            server=old.name,
            epoch=old.epoch,
            other=new.name,
            newer=new.epoch,
        )
        out.append(Demote(old.name))

    # -- answers ----------------------------------------------------------------

    def promote_done(
        self, m: Member, status: ServerStatus | None, reason: str, now: float
    ) -> list[Action]:
        """The answer to a Promote of ``m`` (its status already recorded when it succeeded)."""
        out: list[Action] = []
        fo = self.failover
        if status is not None:
            if fo is not None and fo.target == m.name:
                self._promoted(m, now, out)
            elif self.state in PROMOTING_STATES:
                self.machine.fire(E.SWITCHOVER_ENDED)
                self.switchover_result = f"'{m.name}' is primary at epoch {status.epoch}"
                self._redirect(m, out)
            return out
        if self.state in PROMOTING_STATES:
            self._switchover_failed(reason, m, out)
            return out
        if fo is None or fo.target != m.name:
            return out
        old = self.peer(m)
        if not fo.force and old.up_as("primary"):
            # It came back while this promotion was asked (and refused): no failover.
            emit(out, events.FAILOVER_CANCELLED, old, pair=self.name, server=old.name)
            self._end_failover(E.CANCELLED)
            return out
        if self.state is PairState.FAILOVER_PROMOTING:
            self.machine.fire(E.REFUSED)
        fo.promote_sent_at = None  # answered: the database is not held
        fo.promote_at = now + m.spec.promote_retry
        emit(out, events.PROMOTE_REFUSED, m, pair=self.name, server=m.name, reason=reason)
        return out

    def _promoted(self, m: Member, now: float, out: list[Action]) -> None:
        fo = self.failover
        assert fo is not None
        ms = (now - fo.detected_at) * 1000
        emit(out, events.PROMOTED, m, pair=self.name, server=m.name, epoch=m.epoch, ms=ms)
        self._end_failover(E.PROMOTED)
        self.owes_healthy = True
        self._redirect(m, out)

    # -- time -------------------------------------------------------------------

    def deadlines(self) -> list[float]:
        """When :meth:`tick` must next be called for this pair."""
        if self.paused:
            return []
        times: list[float] = []
        fo = self.failover
        if fo is not None and self.state is PairState.FAILOVER_WAITING:
            times.append(fo.promote_at)
        if fo is not None and not fo.force and not fo.fenced:
            after = self.fence_after(self._member(fo.old))
            if after > 0:
                times.append(fo.detected_at + after)
                if fo.promote_sent_at is not None and self.locks_database(self._member(fo.old)):
                    times.append(fo.promote_sent_at + proof.PROMOTE_HANG)
        if self.no_primary_since is not None:
            times.append(self.no_primary_since + NO_PRIMARY_GRACE)
        return times

    def tick(self, now: float) -> list[Action]:
        """Time is ``now``: fencing, a missing primary, and promotions that are due."""
        out: list[Action] = []
        self._fencing(now, out)
        self._no_primary(now, out)
        self._due_promotion(now, out)
        return out

    def _fencing(self, now: float, out: list[Action]) -> None:
        """A silent primary that still blocks the failover (the backup's promotions keep
        failing, e.g. it holds the database's lock while stopped) is killed, when it is a
        process the supervisor watches: its exit is then proof of death."""
        fo = self.failover
        if fo is None or fo.force or fo.fenced or self.paused:
            return
        old = self._member(fo.old)
        after = self.fence_after(old)
        # On SQLite a promotion unanswered for PROMOTE_HANG (a take is a few ms) waits on
        # the write lock the silent primary holds: fenced then, not a whole lease later.
        sent = fo.promote_sent_at
        hung = sent is not None and now >= sent + proof.PROMOTE_HANG and self.locks_database(old)
        if after <= 0 or (now < fo.detected_at + after and not hung):
            return
        after = min(after, round(now - fo.detected_at, 3))
        fo.fenced = True
        if old.operator_stopped:
            return  # it is being stopped anyway
        if old.watched is None:
            fo.fence_unarmed = True  # looked at again when a process of it is adopted
        if old.process != ProcessState.RUNNING:
            return  # nothing known to kill
        fields = {"pair": self.name, "server": old.name, "after": after}
        if old.watched is not None and proof.may_fence(old.watched, old.reported, old.found):
            emit(out, events.FENCING, old, **fields, pid=old.watched)
            out.append(Fence(old.name, old.watched))
        else:
            emit(out, events.NOT_FENCED, old, **fields, pid=old.pid)

    def adopted(self, m: Member, now: float) -> list[Action]:
        """A process of ``m`` was found running and is now watched: if ``m`` is the silent
        primary whose fencing came due while none was, the fencing is due now."""
        out: list[Action] = []
        fo = self.failover
        if fo is not None and fo.old == m.name and fo.fence_unarmed:
            fo.fenced = fo.fence_unarmed = False
            self._fencing(now, out)
        return out

    def _no_primary(self, now: float, out: list[Action]) -> None:
        """No primary for a while: promote the backup further ahead (without force, so the
        lease decides). Both members up and backup; or one up as backup and the other not
        answering at all: a supervisor restarted while the primary hangs knows of no
        failover, and waited for ever (found by make chaos, seed 416). Never a member an
        operator stopped."""
        a, b = self.a, self.b
        both = a.up_as("backup") and b.up_as("backup")
        alone = (a.up_as("backup") and not b.link) or (b.up_as("backup") and not a.link)
        candidates = [m for m in (a, b) if m.up_as("backup") and not m.operator_stopped]
        if not (both or alone) or not candidates or self.state is not PairState.IDLE:
            self.no_primary_since = None
            return
        if self.no_primary_since is None:
            self.no_primary_since = now
            return
        if now < self.no_primary_since + NO_PRIMARY_GRACE:
            return
        target = max(candidates, key=lambda m: (m.serial or 0, m is a))
        other = self.peer(target)
        emit(
            out,
            events.NO_PRIMARY,
            target,
            pair=self.name,
            after=now - self.no_primary_since,
            server=target.name,
        )
        self.no_primary_since = None
        self.machine.fire(E.NO_PRIMARY)
        self.failover = Failover(target.name, False, now, now, decided=True, old=other.name)

    def _due_promotion(self, now: float, out: list[Action]) -> None:
        fo = self.failover
        if fo is None or self.state is not PairState.FAILOVER_WAITING or fo.promote_at > now:
            return
        if fo.force and self._member(fo.old).process != ProcessState.DOWN:
            fo.force = False  # the old primary runs again: no more proof of death
        if fo.untold is not None:  # the grace ended without an exit: it was a silence
            self._tell_silence(fo.old, fo.untold, self._member(fo.old).spec.failover_wait, out)
            fo.untold = None
        target = self._member(fo.target)
        if not fo.decided:
            fo.decided = True
            emit(out, events.DECIDED_WAIT, target, pair=self.name, server=fo.target)
        self.machine.fire(E.PROMOTE_SENT)
        over = self._member(fo.old).epoch or None if fo.force else None
        fo.promote_sent_at = None if fo.force else now
        out.append(Promote(fo.target, force=fo.force, over_epoch=over))
