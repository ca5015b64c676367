"""Whom a backup follows and when: the replication follower's decisions, as a pure machine.

A backup replicates from whoever holds the pair's lease (:mod:`confserv.ha.replication`
carries it out). :class:`Follower` is fed what happened (the lease as read, the
connection made, the primary's first answer, each change applied, an
acknowledgement sent or answered, the connection lost) with the time, and
answers what to do: whether to follow the lease's holder and at which address,
when to read the lease again, when the next acknowledgement is due and how
long its answer may take. Nothing here reads a clock or touches IO.

Rules:

- Only a valid lease of *another* process, whose address parses as
  ``host:port:management-port``, is followed; anything else (no lease, an
  expired one, our own, a garbled address, the database unreachable) is looked
  at again :attr:`Follower.retry` seconds later.
- After the connection is lost, or the primary is refused (an older epoch),
  the lease is read again :attr:`Follower.retry` seconds later: the new primary
  is whoever holds the lease then.
- Once streaming, the backup acknowledges at once and then :attr:`Follower.ack_every`
  seconds after each answer, also on a busy stream (the primary's failsafe
  counts on it); an acknowledgement not answered within :attr:`Follower.ack_timeout`
  ends the connection.
- The backup has *caught up* once memory reaches the serial the primary
  answered ``replicate`` with; it stays caught up until the connection ends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FollowerStateError(Exception):
    """An event that cannot happen in the follower's current phase (a bug in the glue)."""


class Phase(enum.Enum):
    """Where the follower is."""

    #: Waiting until :attr:`Follower.retry_at` to read the lease.
    WAITING = "waiting"
    #: Connecting to the lease holder's management port.
    CONNECTING = "connecting"
    #: Asked to ``replicate``, waiting for the first answer.
    REPLICATING = "replicating"
    #: Applying the primary's change stream.
    STREAMING = "streaming"


@dataclass(frozen=True, slots=True)
class Target:
    """The primary to follow: where clients and the management port reach it."""

    holder: str
    host: str
    port: int
    management_port: int

    @property
    def client_address(self) -> str:
        """``host:port`` of its client port (the backup's hint to clients)."""
        return f"{self.host}:{self.port}"

    @property
    def management_address(self) -> str:
        """``host:management-port``, where the backup connects."""
        return f"{self.host}:{self.management_port}"


def parse_address(address: str) -> tuple[str, int, int] | None:
    """``host:port:management-port`` -> its parts, or None."""
    host, _, rest = address.rpartition(":")
    host, _, port = host.rpartition(":")
    if not host or not port.isdigit() or not rest.isdigit():
        return None
    return host, int(port), int(rest)


class Follower:
    """The follower's decisions (see module docstring).

    Args:
        own_key: this process's holder key: its own lease is never followed.
        retry: seconds between attempts to find and reach a primary.
        ack_every: seconds from one answered acknowledgement to the next.
        ack_timeout: how long an acknowledgement's answer may take.
    """

    def __init__(self, own_key: str, *, retry: float, ack_every: float, ack_timeout: float) -> None:
        if retry <= 0 or ack_every <= 0 or ack_timeout <= 0:
            raise ValueError("retry, ack_every and ack_timeout must be positive")
        self.own_key = own_key
        self.retry = retry
        self.ack_every = ack_every
        self.ack_timeout = ack_timeout
        self.phase = Phase.WAITING
        #: When the lease may be read next (WAITING); None: at once.
        self.retry_at: float | None = None
        self.target: Target | None = None
        #: The serial the primary's first answer was at (STREAMING).
        self.upto: int | None = None
        self.caught_up = False
        #: When the next acknowledgement is due (STREAMING).
        self.next_ack: float | None = None
        #: The answer to the acknowledgement under way is due by then, or None.
        self.ack_answer_by: float | None = None

    # -- time -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When something is due: the lease read, the next ack, or an ack's answer."""
        if self.phase is Phase.WAITING:
            return self.retry_at
        if self.phase is Phase.STREAMING:
            return self.ack_answer_by if self.ack_answer_by is not None else self.next_ack
        return None

    def may_read(self, now: float) -> bool:
        """Whether the lease may be read at ``now``."""
        return self.phase is Phase.WAITING and (self.retry_at is None or now >= self.retry_at)

    def ack_due(self, now: float) -> bool:
        """Whether an acknowledgement must be sent at ``now``."""
        return (
            self.phase is Phase.STREAMING
            and self.ack_answer_by is None
            and self.next_ack is not None
            and now >= self.next_ack
        )

    # -- events ---------------------------------------------------------------

    def lease_read(
        self, holder_key: str, holder: str, address: str, valid: bool, now: float
    ) -> Target | None:
        """The lease as read at ``now`` (an empty ``holder_key``: none, or unreadable).

        Returns the primary to connect to, or None: read again at :attr:`retry_at`.
        """
        if not self.may_read(now):
            raise FollowerStateError(f"lease read in phase {self.phase.value} before its time")
        parts = parse_address(address)
        if not valid or not holder_key or holder_key == self.own_key or parts is None:
            self.retry_at = now + self.retry
            return None
        self.target = Target(holder, *parts)
        self.phase = Phase.CONNECTING
        self.retry_at = None
        return self.target

    def connected(self) -> None:
        """The management connection to :attr:`target` is up; ``replicate`` is asked."""
        self._expect(Phase.CONNECTING, "connected")
        self.phase = Phase.REPLICATING

    def replicated(self, upto: int, at: int, now: float) -> None:
        """The first answer is applied: the primary was at ``upto``, memory is at ``at``."""
        self._expect(Phase.REPLICATING, "replicated")
        self.phase = Phase.STREAMING
        self.upto = upto
        self.caught_up = at >= upto
        self.next_ack = now  # the first acknowledgement goes out at once

    def applied(self, at: int) -> None:
        """Memory is at serial ``at`` after a change from the stream."""
        self._expect(Phase.STREAMING, "applied")
        if self.upto is not None and at >= self.upto:
            self.caught_up = True

    def ack_sent(self, now: float) -> float:
        """An acknowledgement went out at ``now``; returns when its answer is due."""
        if not self.ack_due(now):
            raise FollowerStateError("acknowledgement sent before it was due")
        self.ack_answer_by = now + self.ack_timeout
        return self.ack_answer_by

    def ack_answered(self, now: float) -> None:
        """The primary answered the acknowledgement at ``now``."""
        self._expect(Phase.STREAMING, "ack answered")
        if self.ack_answer_by is None:
            raise FollowerStateError("an answer to no acknowledgement")
        if now > self.ack_answer_by:
            raise FollowerStateError("an acknowledgement answered after its deadline")
        self.ack_answer_by = None
        self.next_ack = now + self.ack_every

    def lost(self, now: float) -> None:
        """The connection failed or ended at ``now`` (or the primary was refused)."""
        if self.phase is Phase.WAITING:
            raise FollowerStateError("lost while not connected")
        self.phase = Phase.WAITING
        self.retry_at = now + self.retry
        self.upto = None
        self.caught_up = False
        self.next_ack = None
        self.ack_answer_by = None

    def _expect(self, phase: Phase, what: str) -> None:
        if self.phase is not phase:
            raise FollowerStateError(f"{what} in phase {self.phase.value}")
