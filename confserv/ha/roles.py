"""Who is primary: the role and lease decisions of one server, as a pure state machine.

:class:`RoleMachine` is fed what happened (a lease read, taken, renewed or
refused; the database unreachable; an operator command; the backup's
acknowledgement; the time) and returns :class:`Action` values to carry out,
plus its next deadline. The trio code in :mod:`confserv.ha.pair` carries the
actions out against the store. Nothing here reads a clock or touches IO.

Rules (the project's design notes, ``shared/docs/design.md``, "Who decides roles"):

- A server becomes primary only by taking the lease, which raises the epoch:
  when the lease is unheld, expired, already its own, or by ``force`` (the
  caller has proof that the holder is dead).
- The primary renews every ``renew`` seconds. Its lease is known good until
  ``sent + ttl`` where ``sent`` is when the last successful take or renewal was
  *sent* (the database set the expiry later than that, never earlier).
- ``margin`` before that point, if no renewal succeeded, it stops accepting
  writes and drops to backup (self-fencing), unless the failsafe applies: the
  database is unreachable and the backup acknowledged this server as primary
  within the last ``ttl``. Then it keeps its role, still without writes, and
  goes on trying to renew; a renewal refused for a newer epoch demotes it.
- A renewal refused because the lease moved on (a newer epoch) demotes at once;
  a refusal that answers a renewal of an older epoch than the current one (a
  late answer from before a re-take) is ignored.
- One promotion takes the lease once: a promotion asked while a take is under
  way adds nothing.
- ``name`` is the holder key of this very process (Application plus instance):
  a lease held by another process of the same Application is another holder's.
  At start, a valid lease whose holder is *known dead* (it ran on this host
  and its process is gone: a crash, then a restart before the lease ran out)
  is taken by force: that is proof of death.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    """A server's role in its pair."""

    #: Reading the lease to decide.
    STARTING = "starting"
    #: Following the primary; serves no clients.
    BACKUP = "backup"
    #: Taking the lease (start-up or switch-to-primary).
    PROMOTING = "promoting"
    #: Holding the lease; serves clients.
    PRIMARY = "primary"


@dataclass(frozen=True, slots=True)
class ReadLease:
    """Action: read the pair's lease and report it with :meth:`RoleMachine.lease_read`."""


@dataclass(frozen=True, slots=True)
class TakeLease:
    """Action: take the lease (``force``: regardless of its holder; ``over``: only
    if the lease is still at that epoch, the one whose holder is proven dead)."""

    force: bool
    over: int | None = None


@dataclass(frozen=True, slots=True)
class RenewLease:
    """Action: renew the lease at ``epoch``."""

    epoch: int


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    """Action: release the lease at ``epoch`` (planned hand-over)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class BecomePrimary:
    """Action: close any gap from the history, then serve and accept writes at ``epoch``."""

    epoch: int


@dataclass(frozen=True, slots=True)
class BecomeBackup:
    """Action: stop writes, refuse clients, follow ``holder`` (if known)."""

    reason: str
    holder: str | None


@dataclass(frozen=True, slots=True)
class StopWrites:
    """Action: stop accepting writes (the lease may be running out), keep the role."""

    reason: str


Action = (
    ReadLease | TakeLease | RenewLease | ReleaseLease | BecomePrimary | BecomeBackup | StopWrites
)


class RoleMachine:
    """The role of one server (see module docstring).

    Args:
        name: this server's name, the lease holder it writes.
        ttl: lease time-to-live, seconds.
        renew: seconds between renewals (less than ``ttl``).
        margin: how long before the known expiry writes stop.
    """

    def __init__(self, name: str, *, ttl: float, renew: float, margin: float | None = None) -> None:
        if not 0 < renew < ttl:
            raise ValueError(f"renew ({renew}) must be between 0 and ttl ({ttl})")
        self.name = name
        self.ttl = ttl
        self.renew = renew
        self.margin = margin if margin is not None else min(ttl / 4, max(renew / 2, 0.05))
        self.role = Role.STARTING
        self.epoch = 0
        self.writable = False
        self.holder: str | None = None
        self.good_until = 0.0
        self._renew_at: float | None = None
        self._renewing = False
        self._peer_ack_at: float | None = None
        self._db_unreachable = False

    # -- deadlines ------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called."""
        if self.role is not Role.PRIMARY:
            return None
        deadlines = [self.good_until - self.margin] if self.writable else []
        if self._renew_at is not None and not self._renewing:
            deadlines.append(self._renew_at)
        return min(deadlines) if deadlines else None

    def tick(self, now: float) -> list[Action]:
        """Time is ``now``: renew when due; self-fence when the lease may run out."""
        out: list[Action] = []
        if self.role is not Role.PRIMARY:
            return out
        if self.writable and now >= self.good_until - self.margin:
            self.writable = False
            if self._failsafe(now):
                out.append(
                    StopWrites(
                        "lease not renewed and database unreachable; "
                        "the backup still follows this server (failsafe)"
                    )
                )
            else:
                out.append(self._demote("lease not renewed in time: self-fenced", None))
                return out
        if self._renew_at is not None and now >= self._renew_at and not self._renewing:
            self._renewing = True
            out.append(RenewLease(self.epoch))
        return out

    def _failsafe(self, now: float) -> bool:
        return (
            self._db_unreachable
            and self._peer_ack_at is not None
            and now - self._peer_ack_at <= self.ttl
        )

    # -- start-up and commands ------------------------------------------------

    def start(self) -> list[Action]:
        """Begin: read the lease."""
        self.role = Role.STARTING
        return [ReadLease()]

    def lease_read(
        self, holder: str, valid: bool, holder_dead: bool = False, epoch: int | None = None
    ) -> list[Action]:
        """The lease as read at start: a valid lease of another live process makes us
        backup; one whose holder is known dead is taken by force, over the ``epoch``
        it was read at only (found by make chaos, PostgreSQL, first seed 184431: two
        servers restarted together both read the dead holder of epoch 29; one took
        epoch 30, the other then forced epoch 31 over that live holder)."""
        if self.role is not Role.STARTING:
            return []
        if valid and holder and holder != self.name:
            if holder_dead:
                self.role = Role.PROMOTING
                return [TakeLease(force=True, over=epoch)]
            return [self._demote(f"'{holder}' holds the lease", holder)]
        self.role = Role.PROMOTING
        return [TakeLease(force=False)]

    def promote(self, *, force: bool, over: int | None = None) -> list[Action]:
        """Operator or supervisor: switch to primary (``force`` only with proof of death
        of the holder at epoch ``over``, when given)."""
        if self.role in (Role.PRIMARY, Role.PROMOTING):
            return []  # already primary, or a take is under way: never take twice
        self.role = Role.PROMOTING
        return [TakeLease(force=force, over=over if force else None)]

    def demote(self, reason: str = "switched to backup by command") -> list[Action]:
        """Operator or supervisor: planned hand-over to backup (or giving up a promotion)."""
        if self.role is not Role.PRIMARY:
            return []
        epoch = self.epoch
        return [self._demote(reason, None), ReleaseLease(epoch)]

    # -- results of actions ---------------------------------------------------

    def lease_taken(self, epoch: int, sent: float, now: float | None = None) -> list[Action]:
        """The lease was taken at ``epoch``: asked at ``sent``, answered at ``now``."""
        self.role = Role.PRIMARY
        self.epoch = epoch
        self.holder = self.name
        self.good_until = sent + self.ttl
        self._renew_at = sent + self.renew
        self._renewing = False
        self._db_unreachable = False
        if now is not None and now >= self.good_until - self.margin:
            # The take answered so late that the lease may already be running out:
            # renew before accepting writes (instead of self-fencing at once).
            self.writable = False
            self._renew_at = now
            return [BecomePrimary(epoch)]
        self.writable = True
        return [BecomePrimary(epoch)]

    def lease_refused(self, holder: str) -> list[Action]:
        """Taking the lease failed: another server holds it."""
        return [self._demote(f"'{holder}' holds the lease", holder)]

    def renewed(self, epoch: int, sent: float, now: float) -> list[Action]:
        """A renewal sent at ``sent`` succeeded; its answer arrived at ``now``.

        The lease runs from when the renewal was *sent*: an answer that comes
        later than ``ttl - margin`` does not make the server writable again
        (found by hypothesis: a late answer re-opened writes on a lease that
        may already have run out). ``tick`` then decides as for any lapse.
        """
        self._renewing = False
        self._db_unreachable = False
        if self.role is not Role.PRIMARY or epoch != self.epoch:
            return []
        self.good_until = sent + self.ttl
        self._renew_at = sent + self.renew
        out: list[Action] = []
        if not self.writable and now < self.good_until - self.margin:
            self.writable = True
            out.append(BecomePrimary(self.epoch))
        return out + self.tick(now)

    def renew_fenced(self, epoch: int, reason: str) -> list[Action]:
        """A renewal at ``epoch`` was refused: the lease moved on."""
        if epoch != self.epoch:
            return []  # the answer to a renewal of an older epoch: not about this one
        self._renewing = False
        if self.role is not Role.PRIMARY:
            return []
        return [self._demote(f"lease lost: {reason}", None)]

    def db_unreachable(self, now: float) -> list[Action]:
        """A renewal could not reach the database; retry at once if time allows."""
        self._renewing = False
        self._db_unreachable = True
        if self.role is Role.PRIMARY:
            self._renew_at = now + min(self.renew, self.margin / 2)
        return self.tick(now)

    def peer_ack(self, now: float) -> None:
        """The backup acknowledged this server as primary at ``now``."""
        self._peer_ack_at = now

    def _demote(self, reason: str, holder: str | None) -> BecomeBackup:
        self.role = Role.BACKUP
        self.writable = False
        self.holder = holder
        self._renew_at = None
        self._renewing = False
        return BecomeBackup(reason, holder)
