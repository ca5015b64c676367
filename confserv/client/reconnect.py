"""Which server the resilient client tries next, when, and when it gives up: a pure machine.

:class:`~confserv.client.resilient.ResilientClient` keeps one connection to
whichever server of its list serves. :class:`ReconnectPolicy` is fed how each
attempt ended (connected, failed, or a connection lost) and the time, and says
which server to try and when, or that the client gives up. Nothing here reads
a clock or touches IO.

Rules (the Application object's ``reconnect_timeout`` and ``reconnect_attempts``):

- Each server is tried ``attempts`` times, ``timeout`` seconds apart, before
  the next one of the list; the list is tried round and round.
- A connection that was up and is lost moves on to the next server at once
  (the server just lost, the one it was up on, is tried last), with no wait; but at most once per
  ``timeout``: a loss within ``timeout`` of the previous one waits out the
  rest, so servers that accept a session and drop it at once (a primary
  shutting down, a relay that cuts) are not hammered in a hot loop.
- An outage begins at the start and at each loss; ``give_up_after`` seconds
  into it (if set), a failed attempt gives up for good instead of waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ReconnectStateError(Exception):
    """An event out of order (a bug in the glue around the policy)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Decision: try :attr:`ReconnectPolicy.server` again at ``until``."""

    until: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Decision: stop trying; the outage has lasted ``after`` seconds or more."""

    after: float


Decision = Wait | GiveUp


class ReconnectPolicy:
    """The resilient client's reconnect policy (see module docstring).

    Args:
        servers: how many servers the list has (at least one).
        timeout: seconds between two attempts after a failure.
        attempts: attempts on one server before the next (at least one).
        give_up_after: seconds into an outage after which a failure gives up; None: never.
    """

    def __init__(
        self, servers: int, *, timeout: float, attempts: int, give_up_after: float | None
    ) -> None:
        if servers < 1:
            raise ValueError("the client needs at least one server")
        self.servers = servers
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.give_up_after = give_up_after
        #: Index of the server to try, into the list (round and round).
        self.index = 0
        #: Failed attempts on that server in a row.
        self.tries = 0
        #: When the current outage gives up (inf: never); None before :meth:`begin`.
        self.deadline: float | None = None
        self.up = False
        self.given_up = False
        #: No attempt before then (after a failure).
        self.wait_until: float | None = None
        #: When the last loss moved on (or will have moved on, after its wait).
        self.last_loss: float | None = None

    @property
    def server(self) -> int:
        """Index, in the list, of the server to try now."""
        return self.index % self.servers

    def next_deadline(self) -> float | None:
        """When the next attempt is due, if the client is waiting to try again."""
        return None if self.up or self.given_up else self.wait_until

    def begin(self, now: float) -> None:
        """An outage begins at ``now`` (the client starts with none up)."""
        if self.given_up:
            raise ReconnectStateError("the client gave up")
        self.up = False
        self.wait_until = None
        self.deadline = math.inf if self.give_up_after is None else now + self.give_up_after

    def connected(self, index: int | None = None) -> None:
        """The attempt connected: the client is up. ``index``: the server of the list
        it is up on, when that is another than the one tried (the backup tried named
        its primary, and the client went there): a loss then moves on from that one."""
        self._attempting("connected")
        self.up = True
        if index is not None and index % self.servers != self.server:
            self.index, self.tries = index % self.servers, 0

    def lost(self, now: float) -> Wait | None:
        """The connection that was up ended at ``now``: the next server, at once
        (None), or after a wait when the previous loss was less than ``timeout`` ago."""
        if not self.up:
            raise ReconnectStateError("lost a connection that was not up")
        self.index, self.tries = self.index + 1, 0
        self.begin(now)
        if self.last_loss is not None and now < self.last_loss + self.timeout:
            self.wait_until = self.last_loss = self.last_loss + self.timeout
            return Wait(self.wait_until)
        self.last_loss = now
        return None

    def failed(self, now: float) -> Decision:
        """The attempt (or the connection, before it was counted up) failed at ``now``."""
        self.up = False  # a connection that failed while being set up counts as an attempt
        self._attempting("failed")
        self.tries += 1
        if self.tries >= self.attempts:  # switch to the next server
            self.index, self.tries = self.index + 1, 0
        assert self.deadline is not None
        if now >= self.deadline:
            self.given_up = True
            assert self.give_up_after is not None  # an infinite deadline is never reached
            return GiveUp(self.give_up_after)
        self.wait_until = now + self.timeout
        return Wait(self.wait_until)

    def may_try(self, now: float) -> bool:
        """Whether an attempt may start at ``now``."""
        return (
            self.deadline is not None
            and not self.up
            and not self.given_up
            and (self.wait_until is None or now >= self.wait_until)
        )

    def _attempting(self, what: str) -> None:
        if self.deadline is None or self.given_up:
            raise ReconnectStateError(f"{what} outside an outage")
