"""The supervisor's decisions, as a pure state machine with one entry point.

:meth:`SupervisorCore.step` takes one typed observation
(:mod:`scs.observations`: a process started or exited, a management link up
or lost, a status seen, the answer to a promotion, an operator's command,
time passing) with the current time, and returns actions (start, stop,
adopt, promote, demote, fence, redirect a proxy, log a line);
:meth:`SupervisorCore.next_deadline` says when it wants a :class:`Tick`. It
never reads a clock, sleeps or touches a process or socket;
:mod:`scs.supervisor` carries the actions out.

The core keeps what it knows of each server and routes: the pair decisions
are :class:`scs.failover.PairControl`'s (their states in
:mod:`scs.pair_machine`'s table), restarts :class:`scs.restarts.Restarts`',
start-up ordering :class:`scs.startup.StartupOrder`'s, the status view
:mod:`scs.view`'s. What a process exit proves is :mod:`scs.proof`'s: only
the exit of the very process the supervisor watches counts, and only if no
link reports the server as another pid. A server that answers as a pid
nobody watches is adopted, never started twice. A server an operator stopped
gets no action at all until an operator starts it.
"""

from __future__ import annotations

import random
from typing import Any, assert_never

from . import events, proof, view
from .actions import Action, Adopt, Start, Stop
from .config import ScsSettings
from .observations import (
    AdoptionFailed,
    Booted,
    DemoteDone,
    LinkLost,
    LinkUp,
    Observation,
    OperatorPause,
    OperatorResume,
    OperatorStart,
    OperatorStop,
    OperatorSwitchover,
    ProcessExited,
    ProcessStarted,
    PromoteDone,
    StartFailed,
    StatusSeen,
    Tick,
)
from .pair_control import PairControl
from .startup import StartupOrder
from .state import Member, ProcessState, emit, emit_all
from .status import ServerStatus


class UnknownServerError(KeyError):
    """An observation names a server that scs.conf does not have."""


class UnknownPairError(KeyError):
    """An operator's command names a pair that scs.conf does not have."""


class SupervisorCore:
    """See module docstring."""

    def __init__(self, settings: ScsSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.members = {name: Member.of(spec) for name, spec in settings.servers.items()}
        proxies = [self.members[p.section] for p in settings.proxies]
        self.pairs = {p.name: PairControl(p, self.members, proxies) for p in settings.pairs}
        self._pair_of = {m: self.pairs[p.name] for p in settings.pairs for m in p.members}
        self.startup = StartupOrder(settings)

    # -- the entry point ----------------------------------------------------------

    def step(self, obs: Observation, now: float) -> list[Action]:
        """What follows from ``obs`` at ``now``: the actions to carry out, in order."""
        match obs:
            case Booted():
                return list(self.startup.boot(now))
            case Tick():
                return self._tick(now)
            case ProcessStarted(server, pid, adopted):
                return self._process_started(self._member(server), pid, adopted, now)
            case StartFailed(server, _reason):
                return self._start_failed(self._member(server), now)
            case ProcessExited(server, pid, how):
                return self._process_exited(self._member(server), pid, how, now)
            case AdoptionFailed(server, pid, answer, reason):
                return self._adoption_failed(self._member(server), pid, answer, reason, now)
            case LinkUp(server, status):
                return self._link_up(self._member(server), status, now)
            case StatusSeen(server, status):
                return self._status_seen(self._member(server), status, now)
            case LinkLost(server, reason, abrupt):
                return self._link_lost(self._member(server), reason, now, abrupt)
            case PromoteDone(server, status, reason):
                return self._promote_done(self._member(server), status, reason, now)
            case DemoteDone(server, ok, reason):
                m = self._member(server)
                pair = self.pair_of(server)
                return [] if pair is None else pair.demote_done(m, ok, reason)
            case OperatorSwitchover(pair, who):
                return self._pair(pair).switchover(who)
            case OperatorPause(pair, who):
                return self._pair(pair).pause(who)
            case OperatorResume(pair, who):
                return self._resume(self._pair(pair), who, now)
            case OperatorStop(server, who):
                return self._operator_stop(self._member(server), who)
            case OperatorStart(server, who):
                return self._operator_start(self._member(server), who)
            case _:
                assert_never(obs)

    def next_deadline(self) -> float | None:
        """When :meth:`step` must next be given a :class:`~scs.observations.Tick`."""
        times = [m.restart.next_start for m in self.members.values()]
        times.append(self.startup.next_deadline())
        for pair in self.pairs.values():
            times.extend(pair.deadlines())
        return min((t for t in times if t is not None), default=None)

    # -- queries (deciding nothing) -------------------------------------------------

    def may_start(self, server: str) -> bool:
        """Whether starting a process for ``server`` now cannot make a second copy."""
        m = self._member(server)
        return m.watched is None and m.adopting is None and not (m.link and m.reported)

    def pair_of(self, server: str) -> PairControl | None:
        """The pair ``server`` belongs to, if any."""
        return self._pair_of.get(server)

    def peer(self, server: str) -> str:
        """The other member of ``server``'s pair."""
        pair = self.pair_of(server)
        assert pair is not None
        return pair.peer(self._member(server)).name

    def fence_after(self, server: str) -> float:
        """Seconds from detecting ``server`` silent to fencing it (see ``fence_delay``)."""
        pair = self.pair_of(server)
        assert pair is not None
        return pair.fence_after(self._member(server))

    def switchover_under_way(self, pair: str) -> bool:
        """Whether an operator's switchover of ``pair`` is still going on."""
        return self._pair(pair).machine.switching

    def switchover_result(self, pair: str) -> str:
        """How ``pair``'s last switchover ended ("failed: ..." when it did); "" while under way."""
        return self._pair(pair).switchover_result

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every server's state for status displays and ``scs status --json``."""
        rows = ((m, self.pair_of(name)) for name, m in self.members.items())
        return view.snapshot(rows, self.startup, now)

    def _member(self, server: str) -> Member:
        try:
            return self.members[server]
        except KeyError:
            raise UnknownServerError(f"no server [{server}] in scs.conf") from None

    def _pair(self, name: str) -> PairControl:
        try:
            return self.pairs[name]
        except KeyError:
            raise UnknownPairError(f"no pair {name!r} in scs.conf") from None

    # -- processes ----------------------------------------------------------------

    def _process_started(self, m: Member, pid: int, adopted: bool, now: float) -> list[Action]:
        """The supervisor started ``pid`` for the server, or adopted it (a pidfd on it)."""
        m.process, m.watched, m.found = ProcessState.RUNNING, pid, adopted
        m.restart.cancel()
        self.startup.forget(m.name)
        if m.adopting == pid:
            m.adopting = None
        pair = self.pair_of(m.name)
        return pair.adopted(m, now) if adopted and pair is not None else []

    def _start_failed(self, m: Member, now: float) -> list[Action]:
        """The server's command could not be run: it is down (restarted after a back-off)."""
        out: list[Action] = []
        if m.watched is None:
            self._down(m, now, out)
        return out

    def _process_exited(self, m: Member, pid: int, how: str, now: float) -> list[Action]:
        """Proof of death only when ``pid`` is the process watched for the server and the
        one it answered as (:func:`scs.proof.judge_exit`); otherwise one line says why not,
        and nothing is failed over."""
        out: list[Action] = []
        verdict = proof.judge_exit(m.name, pid, m.watched, m.reported, m.link)
        emit(out, events.PROCESS_EXITED, m, server=m.name, pid=pid, how=how)
        if m.watched == pid:
            m.watched, m.found = None, False
        pair = self.pair_of(m.name)
        if not verdict.proof:
            emit(out, events.EXIT_NOT_PROOF, m, server=m.name, pid=pid, why=verdict.why)
            if verdict.runs_as is not None:
                self._maybe_adopt(m, out)  # it still runs: watch that process instead
                return out
            m.reported = None if m.reported == pid else m.reported
            self._down(m, now, out)  # nothing of it is known to run: fail nothing over
            return out
        was_primary = m.role == "primary"
        if pair is not None and was_primary:
            peer = pair.peer(m)
            was_primary = not proof.superseded(m.epoch, peer.up_as("primary"), peer.epoch)
        m.process, m.reported, m.link, m.role = ProcessState.DOWN, None, False, None
        out.extend(self.startup.first_settled(m.name))
        if pair is not None:
            out.extend(pair.exited(m, pid, how, was_primary, verdict.answered, now))
        emit_all(out, m.restart.schedule(now, self.rng, paused=bool(pair and pair.paused)), m)
        return out

    def _adoption_failed(
        self, m: Member, pid: int, answer: int | None, reason: str, now: float
    ) -> list[Action]:
        """Never proof of death: its exit was not seen."""
        out: list[Action] = []
        m.adopting = None if m.adopting == pid else m.adopting
        why = proof.unwatched_why(pid, answer)
        emit(out, events.NOT_WATCHED, m, server=m.name, pid=pid, reason=reason, why=why)
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
        pair = self.pair_of(m.name)
        m.process = ProcessState.DOWN
        out.extend(self.startup.first_settled(m.name))
        emit_all(out, m.restart.schedule(now, self.rng, paused=bool(pair and pair.paused)), m)

    def _maybe_adopt(self, m: Member, out: list[Action]) -> None:
        """The server answers as a pid nobody watches: adopt it rather than start a copy."""
        pid = m.reported
        if pid is None or m.watched is not None or pid in (m.adopting, m.unwatchable):
            return
        if m.operator_stopped:
            return  # no action for it until an operator starts it
        m.adopting, m.process = pid, ProcessState.RUNNING
        m.restart.cancel()
        self.startup.forget(m.name)
        out.append(Adopt(m.name, pid))

    # -- management links -----------------------------------------------------------

    def _link_up(self, m: Member, status: ServerStatus, now: float) -> list[Action]:
        out: list[Action] = []
        m.link = True
        m.restart.seen_up()
        self._record(m, status, now)
        self._maybe_adopt(m, out)
        out.extend(self.startup.first_settled(m.name))
        emit(
            out,
            events.LINK_UP,
            m,
            server=m.name,
            where=f"{m.spec.host}:{m.spec.management_port}",
            role=m.role,
            epoch=m.epoch,
            serial=m.serial,
        )
        self._after_status(m, now, out)
        return out

    def _status_seen(self, m: Member, status: ServerStatus, now: float) -> list[Action]:
        out: list[Action] = []
        old = m.role
        self._record(m, status, now)
        if m.link:
            self._maybe_adopt(m, out)
        if m.role != old:
            emit(out, events.ROLE_SEEN, m, server=m.name, role=m.role, epoch=m.epoch)
        self._after_status(m, now, out)
        return out

    def _record(self, m: Member, status: ServerStatus, now: float) -> None:
        m.role, m.epoch, m.serial = status.role, status.epoch, status.serial
        m.last_heard = now
        if status.role is not None and status.role != "starting":
            m.restart.serving(now)
        if status.pid is not None:
            m.reported = status.pid
            if m.process == ProcessState.DOWN:
                m.process = ProcessState.RUNNING  # not started by us (or adopted after a restart)
        m.lease_ttl = status.lease_ttl if status.lease_ttl is not None else m.lease_ttl
        m.engine = status.engine if status.engine is not None else m.engine

    def _after_status(self, m: Member, now: float, out: list[Action]) -> None:
        pair = self.pair_of(m.name)
        if pair is not None:
            out.extend(pair.seen(m, now))

    def _link_lost(self, m: Member, reason: str, now: float, abrupt: bool) -> list[Action]:
        out: list[Action] = []
        was_primary = m.up_as("primary")
        m.link = False
        where = f"{m.spec.host}:{m.spec.management_port}"
        emit(out, events.LINK_LOST, m, server=m.name, where=where, reason=reason)
        pair = self.pair_of(m.name)
        if pair is not None:
            out.extend(pair.silent(m, was_primary, reason, now, abrupt=abrupt))
        return out

    def _promote_done(
        self, m: Member, status: ServerStatus | None, reason: str, now: float
    ) -> list[Action]:
        pair = self.pair_of(m.name)
        if pair is None:
            return []
        if status is not None:
            self._record(m, status, now)
        return pair.promote_done(m, status, reason, now)

    # -- operators ----------------------------------------------------------------

    def _resume(self, pair: PairControl, who: str, now: float) -> list[Action]:
        """Automatic actions again; restarts held while paused are scheduled."""
        out = pair.resume(who)
        for m in (pair.a, pair.b):
            emit_all(out, m.restart.resume(now, self.rng), m)
        return out

    def _operator_stop(self, m: Member, who: str) -> list[Action]:
        """Stopped and never restarted, promoted, adopted or fenced until started again."""
        m.restart.stop_by_operator()
        self.startup.forget(m.name)
        out: list[Action] = []
        emit(out, events.STOPPED, None, server=m.name, who=who)
        out.append(Stop(m.name))
        pair = self.pair_of(m.name)
        if pair is not None:
            out.extend(pair.stopped_by_operator(m))
        return out

    def _operator_start(self, m: Member, who: str) -> list[Action]:
        """Clears an operator stop; starts the server unless something of it runs."""
        m.restart.start_by_operator()
        out: list[Action] = []
        if m.process == ProcessState.RUNNING:
            if m.link:
                self._maybe_adopt(m, out)  # it runs unwatched (started by hand meanwhile)
            return out
        return [Start(m.name, f"started by {who}")]

    # -- time -----------------------------------------------------------------------

    def _tick(self, now: float) -> list[Action]:
        """Time is ``now``: held-back starts, restarts and pair deadlines that are due."""
        out: list[Action] = []
        for name, m in self.members.items():
            if self.startup.due(name, now):
                if self.may_start(name) and not m.operator_stopped:
                    out.append(Start(name, "autostart; its peer did not answer"))
                continue
            if m.restart.due(now) and self.may_start(name):
                out.append(Start(name, m.restart.restarted(now)))
        for pair in self.pairs.values():
            out.extend(pair.tick(now))
        return out
