"""The supervisor's decisions, as a pure state machine.

:class:`SupervisorCore` is fed observations (a process started or exited, a
management link up or lost and why, a role reported, the answer to a
promotion, an operator's command) with the current time, and returns
actions (start, stop, promote, force-promote, demote, redirect a proxy) and
log lines, plus its next deadline. It never reads a clock, sleeps or touches
a process or socket; :mod:`scs.supervisor` carries the actions out.

The rules (``shared/docs/design.md``: fast when certain, safe when uncertain):

- The primary's process exited (we saw it): proof of death, so the backup is
  force-promoted at once. Only the very process the supervisor watches
  counts, and only if no link reports the server as another pid
  (:mod:`scs.proof`): the exit of a duplicate start proves nothing. A server
  that answers as a pid nobody watches is adopted, never started twice.
- The primary went silent (link lost, ADDP timeout, hang) while its process
  may live: after ``failover-wait`` the backup is asked to promote without
  force, again every ``promote-retry``; it refuses until the old primary's
  lease has expired. A primary that comes back within the wait cancels it.
- A dead server is restarted with exponential back-off and jitter, at most
  ``restart-limit`` times in ``restart-window`` seconds; past that an alarm
  and slow retries, never a silent give-up. A server an operator stopped is
  not restarted; a paused pair gets no automatic action at all.
- A silent primary that still blocks the failover is fenced (killed, when
  it is the process we watch) after ``fence-after``; unset, it follows from
  the servers' lease (:func:`scs.proof.fence_delay`).
- Both members reporting primary is logged as split brain (the fencing must
  make it impossible for writes; the alarm shows it held), and the one with
  the older epoch is told to step down.
"""

from __future__ import annotations

import random
from typing import Any

from confserv.logs.catalog import LogEvent

from . import events, proof
from .actions import Action, Adopt, Demote, Emit, Fence, Promote, Redirect, Start, Stop
from .config import ScsSettings
from .restarts import schedule_restart
from .state import (
    NO_PRIMARY_GRACE,
    SECOND_MEMBER_DELAY,
    Failover,
    Member,
    Pair,
    snapshot_row,
)


class SupervisorCore:
    """See module docstring."""

    def __init__(self, settings: ScsSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.members = {name: Member(spec) for name, spec in settings.servers.items()}
        self.pairs = {p.name: Pair(p) for p in settings.pairs}
        self._pair_of = {m: p.name for p in settings.pairs for m in p.members}

    # -- helpers ----------------------------------------------------------------

    def pair_of(self, server: str) -> Pair | None:
        """The pair ``server`` belongs to, if any."""
        name = self._pair_of.get(server)
        return None if name is None else self.pairs[name]

    def peer(self, server: str) -> str:
        """The other member of ``server``'s pair."""
        pair = self.pair_of(server)
        assert pair is not None
        a, b = pair.spec.members
        return b if server == a else a

    def primary_of(self, pair: Pair) -> str | None:
        """The member last seen as primary (None if none)."""
        for name in pair.spec.members:
            if self.members[name].role == "primary" and self.members[name].link:
                return name
        return None

    def _emit(self, out: list[Action], event: LogEvent, owner: str | None = None, **f: Any) -> None:
        out.append(Emit(event, f))
        if owner is not None:
            self.members[owner].last_event = f"{event.id:05d}"

    # -- start-up ---------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Start every autostart server; a pair's second member once the first answers.

        The first member of a pair (in file order) is meant as primary: starting
        it first lets it take the lease, and its peer then joins as backup. If
        the first does not answer within :data:`SECOND_MEMBER_DELAY` seconds the
        second is started anyway.
        """
        out: list[Action] = []
        for name, m in self.members.items():
            if not m.spec.autostart:
                continue
            pair = self.pair_of(name)
            if pair is not None and name == pair.spec.members[1]:
                first = self.members[pair.spec.members[0]]
                if first.spec.autostart:
                    m.next_start = now + SECOND_MEMBER_DELAY
                    m.waiting_for_peer = True
                    continue
            out.append(Start(name, "autostart"))
        return out

    def _start_waiting_peer(self, server: str, out: list[Action]) -> None:
        pair = self.pair_of(server)
        if pair is None:
            return
        peer = self.members[self.peer(server)]
        if peer.waiting_for_peer:
            peer.waiting_for_peer = False
            peer.next_start = None
            out.append(Start(peer.spec.section, "autostart, after its peer"))

    # -- observations -------------------------------------------------------------

    def process_started(self, server: str, pid: int, now: float) -> list[Action]:
        """The supervisor started ``pid`` for the server, or adopted it (a pidfd on it)."""
        m = self.members[server]
        m.process, m.watched, m.next_start = "running", pid, None
        if m.adopting == pid:
            m.adopting = None
        return []

    def start_failed(self, server: str, reason: str, now: float) -> list[Action]:
        """The server's command could not be run: it is down (restarted after a back-off)."""
        out: list[Action] = []
        m = self.members[server]
        if m.watched is None:
            self._down(m, now, out)
        return out

    def may_start(self, server: str) -> bool:
        """Whether starting a process for ``server`` now cannot make a second copy."""
        m = self.members[server]
        return m.watched is None and m.adopting is None and not (m.link and m.reported)

    def process_exited(self, server: str, pid: int, how: str, now: float) -> list[Action]:
        """Process ``pid`` of the server exited (``how``: exit code or signal).

        Proof of death only when ``pid`` is the process watched for the server
        and the one it answered as (:func:`scs.proof.judge_exit`); otherwise one
        line says why not, and nothing is failed over.
        """
        out: list[Action] = []
        m = self.members[server]
        verdict = proof.judge_exit(server, pid, m.watched, m.reported, m.link)
        self._emit(out, events.PROCESS_EXITED, server, server=server, pid=pid, how=how)
        if m.watched == pid:
            m.watched = None
        pair = self.pair_of(server)
        paused = pair is not None and pair.paused
        if not verdict.proof:
            self._emit(out, events.EXIT_NOT_PROOF, server, server=server, pid=pid, why=verdict.why)
            if verdict.runs_as is not None:
                self._maybe_adopt(m, out)  # it still runs: watch that process instead
                return out
            m.reported = None if m.reported == pid else m.reported
            self._down(m, now, out)  # nothing of it is known to run: fail nothing over
            return out
        was_primary = m.role == "primary"
        m.process, m.reported, m.link, m.role = "down", None, False, None
        self._start_waiting_peer(server, out)
        # The process that answered as primary died: force. A process that never
        # answered so proves nothing about the one that did.
        fo = pair.failover if pair is not None else None
        primary_died = (was_primary and verdict.answered) or (
            fo is not None and fo.old == server and fo.old_pid == pid
        )
        if pair is not None and not pair.paused and primary_died:
            self._force_failover(pair, server, how, now, out)
        self._schedule_restart(m, now, out, paused=paused)
        return out

    def adoption_failed(
        self, server: str, pid: int, answer: int | None, reason: str, now: float
    ) -> list[Action]:
        """``pid`` could not be watched (``reason``); asked again, the server answered
        as ``answer`` (None: no answer). Never proof of death: its exit was not seen."""
        out: list[Action] = []
        m = self.members[server]
        m.adopting = None if m.adopting == pid else m.adopting
        why = proof.unwatched_why(pid, answer)
        self._emit(out, events.NOT_WATCHED, server, server=server, pid=pid, reason=reason, why=why)
        if answer == pid:
            m.unwatchable = pid  # its link is all there is: failovers by the lease only
        elif answer is not None:
            m.reported = answer
            self._maybe_adopt(m, out)
        elif m.watched is None:
            m.reported = None
            self._down(m, now, out)
        return out

    def _down(self, m: Member, now: float, out: list[Action]) -> None:
        """Nothing of the server runs (no proof of death for all that): restart it."""
        pair = self.pair_of(m.spec.section)
        m.process = "down"
        self._start_waiting_peer(m.spec.section, out)
        self._schedule_restart(m, now, out, paused=pair is not None and pair.paused)

    def _maybe_adopt(self, m: Member, out: list[Action]) -> None:
        """The server answers as a pid nobody watches: adopt it rather than start a copy."""
        pid = m.reported
        if pid is None or m.watched is not None or pid in (m.adopting, m.unwatchable):
            return
        m.adopting, m.process = pid, "running"
        m.next_start, m.waiting_for_peer = None, False
        out.append(Adopt(m.spec.section, pid))

    def _force_failover(
        self, pair: Pair, dead: str, how: str, now: float, out: list[Action]
    ) -> None:
        target = self.peer(dead)
        fo = pair.failover
        if fo is not None and fo.target == target and fo.force:
            return
        t = self.members[target]
        if t.process != "running" and t.pid is None and not t.link:
            self._emit(
                out,
                events.NO_BACKUP,
                dead,
                pair=pair.spec.name,
                server=dead,
                why=f"'{target}' is not running",
            )
            return
        detected = fo.detected_at if fo is not None else now
        if fo is None or not fo.force:  # also when its silence was noticed a moment earlier
            self._emit(out, events.FAILOVER_EXIT, dead, pair=pair.spec.name, server=dead, how=how)
        self._emit(out, events.DECIDED_FORCE, target, pair=pair.spec.name, server=target)
        pair.failover = Failover(
            target, True, detected, now, in_flight=True, decided=True, old=dead
        )
        out.append(Promote(target, force=True))

    def link_up(self, server: str, status: dict[str, Any], now: float) -> list[Action]:
        """The management link to ``server`` is up; ``status`` is its answer."""
        out: list[Action] = []
        m = self.members[server]
        m.link = True
        m.consecutive = 0
        self._record(m, status, now)
        self._maybe_adopt(m, out)
        self._start_waiting_peer(server, out)
        self._emit(
            out,
            events.LINK_UP,
            server,
            server=server,
            where=f"{m.spec.host}:{m.spec.management_port}",
            role=m.role,
            epoch=m.epoch,
            serial=m.serial,
        )
        self._after_status(server, now, out)
        return out

    def role_seen(self, server: str, status: dict[str, Any], now: float) -> list[Action]:
        """A status or role push from ``server``."""
        out: list[Action] = []
        m = self.members[server]
        old = m.role
        self._record(m, status, now)
        if m.link:
            self._maybe_adopt(m, out)
        if m.role != old:
            self._emit(out, events.ROLE_SEEN, server, server=server, role=m.role, epoch=m.epoch)
        self._after_status(server, now, out)
        return out

    def _record(self, m: Member, status: dict[str, Any], now: float) -> None:
        m.role = status.get("role")
        m.epoch = status.get("epoch")
        m.serial = status.get("serial")
        m.last_heard = now
        pid = status.get("pid")
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            m.reported = pid
            if m.process == "down":
                m.process = "running"  # a server we did not start (or adopted after a restart)
        ttl, engine = proof.lease_fields(status)
        m.lease_ttl = ttl if ttl is not None else m.lease_ttl
        m.engine = engine if engine is not None else m.engine

    def _after_status(self, server: str, now: float, out: list[Action]) -> None:
        pair = self.pair_of(server)
        if pair is None:
            return
        m = self.members[server]
        fo = pair.failover
        if fo is not None and fo.old == server and m.role == "primary" and not fo.in_flight:
            # The old primary answers as primary again (back within the wait, or
            # restarted before the promotion went through): nothing to fail over.
            self._emit(out, events.FAILOVER_CANCELLED, server, pair=pair.spec.name, server=server)
            pair.failover = None
        if fo is not None and fo.target == server and m.role == "primary":
            self._promoted(pair, server, now, out)
        a, b = (self.members[x] for x in pair.spec.members)
        if a.link and b.link and a.role == b.role == "primary":
            if not pair.split_alarmed:
                pair.split_alarmed = True
                self._emit(
                    out,
                    events.SPLIT_BRAIN,
                    server,
                    pair=pair.spec.name,
                    a=a.spec.section,
                    ea=a.epoch,
                    b=b.spec.section,
                    eb=b.epoch,
                )
            self._step_down(pair, a, b, out)
        elif pair.split_alarmed:
            pair.split_alarmed = False
        if pair.recovering and a.link and b.link and {a.role, b.role} == {"primary", "backup"}:
            pair.recovering = False
            primary, backup = (a, b) if a.role == "primary" else (b, a)
            self._emit(
                out,
                events.HEALTHY,
                server,
                pair=pair.spec.name,
                primary=primary.spec.section,
                backup=backup.spec.section,
            )

    def _step_down(self, pair: Pair, a: Member, b: Member, out: list[Action]) -> None:
        """Both report primary: the one with the older epoch is told to step down."""
        if pair.paused or pair.switchover is not None or pair.stepping_down is not None:
            return
        which = proof.older_primary(a.epoch, b.epoch)
        if which is None:
            return  # equal or unknown epochs: no way to tell which is right (40310 stands)
        old, new = (a, b) if which == 0 else (b, a)
        pair.stepping_down = old.spec.section
        self._emit(
            out,
            events.STEP_DOWN,
            old.spec.section,
            pair=pair.spec.name,
            server=old.spec.section,
            epoch=old.epoch,
            other=new.spec.section,
            newer=new.epoch,
        )
        out.append(Demote(old.spec.section))

    def link_lost(self, server: str, reason: str, now: float) -> list[Action]:
        """The management link to ``server`` ended (``reason``: closed, ADDP timeout, ...)."""
        out: list[Action] = []
        m = self.members[server]
        was_primary = m.role == "primary" and m.link
        m.link = False
        self._emit(
            out,
            events.LINK_LOST,
            server,
            server=server,
            where=f"{m.spec.host}:{m.spec.management_port}",
            reason=reason,
        )
        pair = self.pair_of(server)
        if pair is None or pair.paused or not was_primary or pair.failover is not None:
            return out
        if pair.switchover is not None:
            return out
        target = self.peer(server)
        wait = m.spec.failover_wait
        self._emit(
            out,
            events.FAILOVER_SILENT,
            server,
            pair=pair.spec.name,
            server=server,
            reason=reason,
            wait=wait,
        )
        pair.failover = Failover(target, False, now, now + wait, old=server, old_pid=m.reported)
        out.extend(self._due_promotions(now))
        return out

    def promote_done(
        self, server: str, status: dict[str, Any] | None, reason: str, now: float
    ) -> list[Action]:
        """The answer to Promote: ``status`` when it became primary, else the refusal."""
        out: list[Action] = []
        pair = self.pair_of(server)
        if pair is None:
            return out
        fo = pair.failover
        if status is not None:
            self._record(self.members[server], status, now)
            if fo is not None and fo.target == server:
                self._promoted(pair, server, now, out)
            elif pair.switchover == "promoting":
                pair.switchover = None
                pair.switchover_result = f"'{server}' is primary at epoch {status.get('epoch')}"
                self._redirect(server, out)
            return out
        if pair.switchover == "promoting":
            pair.switchover = None
            pair.switchover_result = f"failed: {reason}"
            self._emit(out, events.SWITCHOVER_FAILED, server, pair=pair.spec.name, reason=reason)
            return out
        if fo is not None and fo.target == server:
            fo.in_flight = False
            old = self.members[fo.old]
            if not fo.force and old.link and old.role == "primary":
                # It came back while this promotion was asked (and refused): no failover.
                self._emit(
                    out, events.FAILOVER_CANCELLED, fo.old, pair=pair.spec.name, server=fo.old
                )
                pair.failover = None
                return out
            fo.promote_at = now + self.members[server].spec.promote_retry
            self._emit(
                out,
                events.PROMOTE_REFUSED,
                server,
                pair=pair.spec.name,
                server=server,
                reason=reason,
            )
        return out

    def _promoted(self, pair: Pair, server: str, now: float, out: list[Action]) -> None:
        fo = pair.failover
        assert fo is not None
        m = self.members[server]
        self._emit(
            out,
            events.PROMOTED,
            server,
            pair=pair.spec.name,
            server=server,
            epoch=m.epoch,
            ms=(now - fo.detected_at) * 1000,
        )
        pair.failover = None
        pair.recovering = True
        self._redirect(server, out)

    def _redirect(self, server: str, out: list[Action]) -> None:
        for proxy in self.settings.proxies:
            out.append(Redirect(proxy.section, server))

    def demote_done(self, server: str, ok: bool, reason: str, now: float) -> list[Action]:
        """The answer to Demote (planned switchover)."""
        out: list[Action] = []
        pair = self.pair_of(server)
        if pair is not None and pair.stepping_down == server:
            pair.stepping_down = None  # asked again at the next status if both still say primary
            if not ok:
                self._emit(
                    out,
                    events.ACTION_FAILED,
                    server,
                    action="step-down",
                    server=server,
                    reason=reason,
                )
            return out
        if pair is None or pair.switchover != "demoting":
            return out
        if not ok:
            pair.switchover = None
            pair.switchover_result = f"failed: {reason}"
            self._emit(out, events.SWITCHOVER_FAILED, server, pair=pair.spec.name, reason=reason)
            return out
        self.members[server].role = "backup"
        pair.switchover = "promoting"
        out.append(Promote(self.peer(server), force=False))
        return out

    # -- operator commands ------------------------------------------------------

    def switchover(self, pair_name: str, who: str, now: float) -> list[Action]:
        """Planned switchover: demote the primary, then promote the backup."""
        out: list[Action] = []
        pair = self.pairs[pair_name]
        primary = self.primary_of(pair)
        if pair.switchover is not None or pair.failover is not None:
            pair.switchover_result = "failed: a switchover or failover is already under way"
        elif primary is None:
            pair.switchover_result = "failed: no primary is connected"
        elif not (b := self.members[self.peer(primary)]).link or b.role != "backup":
            pair.switchover_result = f"failed: '{b.spec.section}' is not a connected backup"
        else:
            pair.switchover = "demoting"
            pair.switchover_result = ""
            self._emit(
                out,
                events.SWITCHOVER,
                primary,
                pair=pair_name,
                who=who,
                primary=primary,
                backup=b.spec.section,
            )
            out.append(Demote(primary))
            return out
        self._emit(
            out,
            events.SWITCHOVER_FAILED,
            None,
            pair=pair_name,
            reason=pair.switchover_result.removeprefix("failed: "),
        )
        return out

    def pause(self, pair_name: str, who: str, now: float) -> list[Action]:
        """No automatic action for the pair until resumed."""
        pair = self.pairs[pair_name]
        pair.paused = True
        pair.failover = None
        return [Emit(events.PAUSED, {"pair": pair_name, "who": who})]

    def resume(self, pair_name: str, who: str, now: float) -> list[Action]:
        """Automatic actions again; restarts held while paused are scheduled."""
        out: list[Action] = [Emit(events.RESUMED, {"pair": pair_name, "who": who})]
        pair = self.pairs[pair_name]
        pair.paused = False
        for name in pair.spec.members:
            m = self.members[name]
            if m.held_restart:
                m.held_restart = False
                self._schedule_restart(m, now, out, paused=False)
        return out

    def operator_stop(self, server: str, who: str, now: float) -> list[Action]:
        """An operator stops a server: it will not be restarted."""
        m = self.members[server]
        m.operator_stopped = True
        m.next_start = None
        return [Emit(events.STOPPED, {"server": server, "who": who}), Stop(server)]

    def operator_start(self, server: str, who: str, now: float) -> list[Action]:
        """An operator starts a server (clears an operator stop)."""
        m = self.members[server]
        m.operator_stopped = False
        return [] if m.process == "running" else [Start(server, f"started by {who}")]

    # -- restarts ---------------------------------------------------------------

    def _schedule_restart(self, m: Member, now: float, out: list[Action], *, paused: bool) -> None:
        for emit in schedule_restart(m, now, self.rng, paused=paused):
            self._emit(out, emit.event, m.spec.section, **emit.fields)

    # -- time -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called."""
        times = [m.next_start for m in self.members.values() if m.next_start is not None]
        for p in self.pairs.values():
            if p.paused:
                continue
            fo = p.failover
            if fo is not None and not fo.in_flight:
                times.append(fo.promote_at)
            if fo is not None and not fo.force and not fo.fenced:
                after = self.fence_after(fo.old)
                if after > 0:
                    times.append(fo.detected_at + after)
            if p.no_primary_since is not None:
                times.append(p.no_primary_since + NO_PRIMARY_GRACE)
        return min(times) if times else None

    def tick(self, now: float) -> list[Action]:
        """Time is ``now``: restarts and promotions that are due."""
        out: list[Action] = []
        for name, m in self.members.items():
            if m.next_start is not None and m.next_start <= now:
                m.next_start = None
                if not self.may_start(name):
                    continue  # it runs (watched, or it answers): no second copy
                if m.waiting_for_peer:
                    m.waiting_for_peer = False
                    out.append(Start(name, "autostart; its peer did not answer"))
                    continue
                m.restarts.append(now)
                out.append(Start(name, f"restart {m.consecutive}"))
        out.extend(self._fencing(now))
        out.extend(self._no_primary(now))
        out.extend(self._due_promotions(now))
        return out

    def _fencing(self, now: float) -> list[Action]:
        """A silent primary that still blocks the failover (the backup's promotions
        keep failing, e.g. it holds the database's lock while stopped) is killed,
        when it is a process we run: its exit is then proof of death."""
        out: list[Action] = []
        for pair in self.pairs.values():
            fo = pair.failover
            if fo is None or fo.force or fo.fenced or pair.paused:
                continue
            old = self.members[fo.old]
            after = self.fence_after(fo.old)
            if after <= 0 or now < fo.detected_at + after:
                continue
            fo.fenced = True
            if old.process != "running":
                continue
            if old.watched is not None and proof.may_fence(old.watched, old.reported):
                self._emit(
                    out,
                    events.FENCING,
                    fo.old,
                    pair=pair.spec.name,
                    server=fo.old,
                    after=after,
                    pid=old.watched,
                )
                out.append(Fence(fo.old, old.watched))
            else:
                self._emit(
                    out,
                    events.NOT_FENCED,
                    fo.old,
                    pair=pair.spec.name,
                    server=fo.old,
                    after=after,
                    pid=old.pid,
                )
        return out

    def fence_after(self, server: str) -> float:
        """Seconds from detecting ``server`` silent to fencing it (:func:`scs.proof.fence_delay`).

        The lease and engine are as the server last reported them, else as its peer did.
        """
        m = self.members[server]
        peer = self.members[self.peer(server)] if self.pair_of(server) else m
        return proof.fence_delay(
            m.spec.fence_after,
            m.spec.failover_wait,
            m.lease_ttl if m.lease_ttl is not None else peer.lease_ttl,
            m.engine if m.engine is not None else peer.engine,
        )

    def _no_primary(self, now: float) -> list[Action]:
        """No primary for a while: promote the backup further ahead (without force, so
        the lease decides). Both members up and backup; or one up as backup and the
        other not answering at all: a supervisor restarted while the primary hangs
        knows of no failover, and waited for ever (found by make chaos, seed 416)."""
        out: list[Action] = []
        for pair in self.pairs.values():
            a, b = (self.members[x] for x in pair.spec.members)
            both = a.link and b.link and a.role == b.role == "backup"
            alone = (a.link and a.role == "backup" and not b.link) or (
                b.link and b.role == "backup" and not a.link
            )
            stuck = (
                (both or alone)
                and pair.failover is None
                and pair.switchover is None
                and not pair.paused
            )
            if not stuck:
                pair.no_primary_since = None
                continue
            if pair.no_primary_since is None:
                pair.no_primary_since = now
                continue
            if now < pair.no_primary_since + NO_PRIMARY_GRACE:
                continue
            if both:
                target, other = (a, b) if (a.serial or 0) >= (b.serial or 0) else (b, a)
            else:
                target, other = (a, b) if a.link else (b, a)
            self._emit(
                out,
                events.NO_PRIMARY,
                target.spec.section,
                pair=pair.spec.name,
                after=now - pair.no_primary_since,
                server=target.spec.section,
            )
            pair.no_primary_since = None
            pair.failover = Failover(
                target.spec.section, False, now, now, decided=True, old=other.spec.section
            )
        return out

    def _due_promotions(self, now: float) -> list[Action]:
        out: list[Action] = []
        for pair in self.pairs.values():
            fo = pair.failover
            if fo is None or fo.in_flight or pair.paused or fo.promote_at > now:
                continue
            if fo.force and self.members[fo.old].process != "down":
                fo.force = False  # the old primary runs again: no more proof of death
            if not fo.decided:
                fo.decided = True
                self._emit(
                    out, events.DECIDED_WAIT, fo.target, pair=pair.spec.name, server=fo.target
                )
            fo.in_flight = True
            out.append(Promote(fo.target, force=fo.force))
        return out

    # -- views ------------------------------------------------------------------

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every server's state for status displays and ``scs status --json``."""
        return [snapshot_row(m, self.pair_of(name), now) for name, m in self.members.items()]
