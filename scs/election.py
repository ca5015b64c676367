"""Which supervisor may act: the supervisor-lease election of one ``scs``, as a pure state machine.

Several supervisors may watch one installation; exactly one is *active*, by
holding the supervisor lease (its own row in the Configuration Database, with
its own epoch). The others are *standby*: connected and watching, sending no
command. :class:`Election` is fed what the database answered and the current
time, and returns :class:`Action` values for the trio glue to carry out, plus
its next deadline, like the servers' own :class:`confserv.ha.roles.RoleMachine`.
Nothing here reads a clock or touches IO.

Rules (``shared/docs/design.md``, "The supervisor is fenced too"):

- A standby asks the database about the lease every ``retry`` seconds (counted
  from when it asked). It reads it while another supervisor holds it, and
  tries to take it (a conditional take: the database refuses while the lease
  is valid) once it has surely expired: a read that answered ``remaining``
  seconds left at ``now`` means the lease ends by ``now + remaining`` at the
  latest (the database measured between the asking and the answer). An
  unheld lease is taken at once; one held by this very process (a take whose
  answer was lost) is waited out like another's, plus ``retry``, so that a
  standby that reaches the database takes it first. After an ask without an
  answer the next ask is a read.
- Taking the lease raises the epoch; the supervisor becomes active at that
  epoch. Its lease is known good until ``sent + ttl``, ``sent`` being when
  the last successful take or renewal was *sent* (the database set the expiry
  later than that, never earlier). The machine counts ``sent`` from the
  :meth:`Election.tick` (or answer) that returned the action: the glue sends
  it after that, never before, so the count is conservative.
- The active renews every ``renew`` seconds. It *acts* (:meth:`Election.acting`)
  only strictly before ``good_until - margin``; if no renewal succeeded by then
  it becomes standby, whatever the delays. The database unreachable makes it
  retry renewals quickly (every ``min(renew, margin / 2)``) while time allows.
- A renewal refused because another supervisor took the lease (fenced) makes
  it standby at once.
- A supervisor that stopped acting takes the lease again (its own, or expired)
  no earlier than its last term's ``good_until``: a command it sent while acting
  may still be on its way until then, and must not land after one of its new
  epoch (found by hypothesis: a lapse re-took its own still-valid lease at
  once, and an epoch-1 command landed after an epoch-2 one).
- A planned stop stops acting at once and releases the lease ``margin`` later,
  for the same reason (found by hypothesis: a release at once let a standby
  act while the stopping one's last command was still on its way).
- Every ReadLease, TakeLease and RenewLease carries an ``ask`` number and gets
  exactly one answer from the glue quoting it: the result, or
  :meth:`Election.unreachable` (an error or a timeout). An answer to an ask
  that is no longer under way (a late one, after a lapse) is ignored.

Bounds, for one-way database delays of at most ``d1`` (request) and ``d2``
(answer), round trip ``rtt = d1 + d2``, and no clock drift:

- An acting supervisor's lease ends on the database more than ``margin`` later:
  a command sent while acting that reaches its target within ``margin`` reaches
  it before any other supervisor can have taken the lease, and before this one
  takes it again. So if every command lands within ``margin`` of being sent,
  commands are accepted, over all servers and agents, in supervisor-epoch
  order, and one epoch's commands all come from one supervisor.
- After the active dies (or is cut off from the database) at ``t``, a standby
  that reaches the database without loss is acting by
  ``t + d1 + ttl + max(retry, d2) + 2 * rtt`` (the active's last renewal lands
  by ``t + d1``; the first ask that lands after expiry is sent within
  ``max(retry, d2)`` of it; a read then a take).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class ElectionSettingsError(ValueError):
    """The lease timings cannot work (a renewal would come after the stop)."""


class Mode(enum.Enum):
    """A supervisor's part in the election."""

    #: Connected and watching; sends no command.
    STANDBY = "standby"
    #: Holds the supervisor lease; may act while :meth:`Election.acting` says so.
    ACTIVE = "active"
    #: Shut down (:meth:`Election.stop`): asks nothing more.
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ReadLease:
    """Action: read the supervisor lease; answer with :meth:`Election.lease_seen`
    (or :meth:`Election.unreachable`), quoting ``ask``."""

    ask: int


@dataclass(frozen=True, slots=True)
class TakeLease:
    """Action: take the supervisor lease if it is unheld, expired or this supervisor's own
    (raising its epoch); answer with :meth:`Election.taken`, or :meth:`Election.lease_seen`
    when refused (or :meth:`Election.unreachable`), quoting ``ask``."""

    ask: int


@dataclass(frozen=True, slots=True)
class RenewLease:
    """Action: renew the supervisor lease at ``epoch``; answer with :meth:`Election.renewed`
    or :meth:`Election.fenced` (or :meth:`Election.unreachable`), quoting ``ask``."""

    ask: int
    epoch: int


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    """Action: give the supervisor lease up at ``epoch`` (no answer needed)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class BecomeActive:
    """Action: act from now on, every command carrying supervisor epoch ``epoch``."""

    epoch: int


@dataclass(frozen=True, slots=True)
class BecomeStandby:
    """Action: stop acting (``reason``); ``holder``: who holds the lease, when known."""

    reason: str
    holder: str | None = None


Action = ReadLease | TakeLease | RenewLease | ReleaseLease | BecomeActive | BecomeStandby


class Election:
    """One supervisor's side of the election (see module docstring).

    Args:
        name: this supervisor process's holder key (unique per process).
        ttl: supervisor lease time-to-live, seconds.
        renew: seconds between the active's renewals.
        retry: seconds between a standby's looks at the lease.
        margin: how long before the known expiry the active stops acting.
    """

    def __init__(
        self,
        name: str,
        *,
        ttl: float,
        renew: float,
        retry: float,
        margin: float | None = None,
    ) -> None:
        margin = margin if margin is not None else min(ttl / 4, max(renew / 2, 0.05))
        if not (renew > 0 and margin > 0 and renew + margin < ttl):
            raise ElectionSettingsError(
                f"supervisor lease: renew ({renew}) plus margin ({margin}) must be less than "
                f"ttl ({ttl}), both above 0: raise the ttl or lower renew"
            )
        if not retry > 0:
            raise ElectionSettingsError(f"supervisor lease: retry ({retry}) must be above 0")
        self.name = name
        self.ttl = ttl
        self.renew = renew
        self.retry = retry
        self.margin = margin
        self.mode = Mode.STANDBY
        #: The supervisor epoch this supervisor acts (or last acted) at; 0: never active.
        self.epoch = 0
        #: The lease as last seen: its holder ('' unheld, None unknown) and epoch.
        self.holder: str | None = None
        self.holder_epoch = 0
        #: While active: acting strictly before ``good_until - margin``.
        self.good_until = -math.inf
        self._started = False
        self._asks = 0  # the last ask's number
        self._asking: int | None = None  # the read or take under way
        self._ask_sent = -math.inf
        self._next_ask = math.inf
        self._expires_by = math.inf  # the lease as seen surely ends by then
        self._renewing: int | None = None  # the renewal under way
        self._renew_sent = -math.inf
        self._renew_at = math.inf
        self._quiet_until = -math.inf  # no take before: the last term's lease was good until
        self._release: tuple[int, float] | None = None  # (epoch, when) after a stop

    # -- what the supervisor consults -----------------------------------------

    def acting(self, now: float) -> bool:
        """Whether a command may be sent at ``now`` (consult before every command)."""
        return self.mode is Mode.ACTIVE and now < self.good_until - self.margin

    # -- deadlines ------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (None: only on an answer)."""
        if self.mode is Mode.ACTIVE:
            deadlines = [self.good_until - self.margin]
            if self._renewing is None:
                deadlines.append(self._renew_at)
            return min(deadlines)
        if self.mode is Mode.STANDBY and self._started and self._asking is None:
            return self._next_ask
        return self._release[1] if self._release is not None else None

    def tick(self, now: float) -> list[Action]:
        """Time is ``now``: ask or renew when due; stop acting when the lease may run out."""
        if self.mode is Mode.ACTIVE:
            if now >= self.good_until - self.margin:
                self._to_standby(self.name)
                self._expires_by = -math.inf  # our own: take it back if nobody else did
                self._next_ask = now
                return [BecomeStandby("supervisor lease not renewed in time"), *self.tick(now)]
            if now >= self._renew_at and self._renewing is None:
                self._renewing = self._new_ask()
                self._renew_sent = now
                return [RenewLease(self._renewing, self.epoch)]
            return []
        if self._release is not None and now >= self._release[1]:
            epoch, self._release = self._release[0], None
            return [ReleaseLease(epoch)]
        due = self._started and self._asking is None and now >= self._next_ask
        if self.mode is Mode.STANDBY and due:
            if now >= self._expires_by and now < self._quiet_until:
                self._next_ask = self._quiet_until  # our last term's commands may be in flight
                return []
            self._asking = ask = self._new_ask()
            self._ask_sent = now
            return [TakeLease(ask) if now >= self._expires_by else ReadLease(ask)]
        return []

    def _new_ask(self) -> int:
        self._asks += 1
        return self._asks

    # -- start and stop -------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin as standby: read the lease at once."""
        if self._started:
            return []
        self._started = True
        self._next_ask = now
        return self.tick(now)

    def stop(self, now: float) -> list[Action]:
        """Shut down: stop acting at once, and give the lease up ``margin`` later (a
        planned hand-over; the commands sent before have landed by then). The glue
        ticks until :meth:`next_deadline` is None."""
        out: list[Action] = []
        if self.mode is Mode.ACTIVE:
            out.append(BecomeStandby("supervisor stopping: lease to be released"))
            self._release = (self.epoch, now + self.margin)
        self.mode = Mode.STOPPED
        self.good_until = -math.inf
        self._asking = self._renewing = None
        return out + self.tick(now)

    # -- answers from the database ----------------------------------------------

    def lease_seen(
        self, ask: int, holder: str, epoch: int, remaining: float, now: float
    ) -> list[Action]:
        """The read ``ask`` answered at ``now`` (or the take ``ask`` was refused): ``holder``
        ('' unheld) holds the lease at ``epoch``, ``remaining`` seconds left by the
        database clock."""
        if self.mode is not Mode.STANDBY or ask != self._asking:
            return []
        self._asking = None
        self.holder, self.holder_epoch = holder, epoch
        if not holder or remaining <= 0:
            self._expires_by = -math.inf  # takeable now
            self._next_ask = now
        else:
            # Held, also by this very process (a take whose answer was lost): waited out
            # like another's, and a retry longer, so that a standby that reaches the
            # database takes it first. Taken again at once, a lost answer after each take
            # kept the lease valid and unacted on while the answers were lost (found by
            # the simulation, tests/sim/test_redundant.py).
            own = self.retry if holder == self.name else 0.0
            self._expires_by = now + remaining + own
            self._next_ask = max(now, min(self._ask_sent + self.retry, self._expires_by))
        return self.tick(now)

    def taken(self, ask: int, epoch: int, now: float) -> list[Action]:
        """The take ``ask`` succeeded at ``epoch``; its answer arrived at ``now``."""
        if self.mode is not Mode.STANDBY or ask != self._asking:
            return []
        self._asking = None
        self.holder, self.holder_epoch = self.name, epoch
        sent = self._ask_sent
        if now >= sent + self.ttl - self.margin:
            # Answered too late to act on: ours, but take it afresh at the next ask.
            self._expires_by = -math.inf
            self._next_ask = max(now, sent + self.retry)
            return self.tick(now)
        self.mode = Mode.ACTIVE
        self.epoch = epoch
        self.good_until = sent + self.ttl
        self._renew_at = sent + self.renew
        self._renewing = None
        return [BecomeActive(epoch), *self.tick(now)]

    def renewed(self, ask: int, now: float) -> list[Action]:
        """The renewal ``ask`` succeeded; its answer arrived at ``now``."""
        if self.mode is not Mode.ACTIVE or ask != self._renewing:
            return []
        self._renewing = None
        self.good_until = max(self.good_until, self._renew_sent + self.ttl)
        self._renew_at = self._renew_sent + self.renew
        return self.tick(now)

    def fenced(self, ask: int, holder: str | None, now: float) -> list[Action]:
        """The renewal ``ask`` was refused: the lease moved on (to ``holder``, if known)."""
        if self.mode is not Mode.ACTIVE or ask != self._renewing:
            return []  # about an older term: not this one
        epoch = self.epoch
        self._to_standby(holder)
        self._next_ask = now + self.retry
        reason = f"supervisor lease lost at epoch {epoch}"
        return [BecomeStandby(reason, holder), *self.tick(now)]

    def superseded(self, newest: int, now: float) -> list[Action]:
        """A server or an agent refused a command of this supervisor's: it has seen
        supervisor epoch ``newest`` (-1: not told), newer than this one's. The lease has
        moved on whatever the renewals say: stop acting at once."""
        if self.mode is not Mode.ACTIVE or 0 <= newest <= self.epoch:
            return []
        epoch = self.epoch
        self._to_standby(None)
        self._next_ask = now
        shown = f"epoch {newest}" if newest >= 0 else "a newer epoch"
        reason = f"a server or agent has seen supervisor {shown}, newer than {epoch}"
        return [BecomeStandby(reason), *self.tick(now)]

    def unreachable(self, ask: int, now: float) -> list[Action]:
        """The read, take or renewal ``ask`` got no answer (an error or a timeout)."""
        if self.mode is Mode.ACTIVE and ask == self._renewing:
            self._renewing = None
            self._renew_at = now + min(self.renew, self.margin / 2)
        elif self.mode is Mode.STANDBY and ask == self._asking:
            self._asking = None
            self._expires_by = math.inf  # a take may have landed unanswered: read first
            self._next_ask = max(now, self._ask_sent + self.retry)
        else:
            return []
        return self.tick(now)

    def _to_standby(self, holder: str | None) -> None:
        self._quiet_until = self.good_until
        self.mode = Mode.STANDBY
        self.holder = holder
        self.good_until = -math.inf
        self._renewing = None
        self._renew_at = math.inf
        self._asking = None
        self._expires_by = math.inf
