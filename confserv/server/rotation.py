"""Which master a proxy tries next, and when: the proxy's master rotation, as a pure machine.

A proxy follows whichever of its ``master`` list is primary
(:mod:`confserv.server.proxy` carries the attempts out). :class:`MasterRotation`
is fed the end of each attempt, the master it came to follow, the
supervisor's redirects and the time; it answers which master to try and when.
Nothing here reads a clock or touches IO.

Rules:

- The masters are tried in turn, in the order of the list; after a whole
  round of them (not after each) the proxy waits :attr:`MasterRotation.retry`
  seconds before the next round.
- A redirect names the master to try next, before the turn of the list; it
  ends the attempt under way unless that attempt already follows the master
  named. A redirect is tried at once after the attempt ends, with no wait,
  but a wait already begun is not cut short.
- The turn of the list moves on after every attempt, a redirected one too.
"""

from __future__ import annotations

from collections.abc import Sequence

Address = tuple[str, int]


class RotationStateError(Exception):
    """An event that cannot happen now (a bug in the glue around the rotation)."""


def where(address: Address) -> str:
    """``host:port`` of a master, as logged and as compared."""
    return f"{address[0]}:{address[1]}"


class MasterRotation:
    """The order and the pace of a proxy's attempts (see module docstring).

    Args:
        masters: the ``master`` list, at least one.
        retry: seconds to wait after each whole round of the list.
    """

    def __init__(self, masters: Sequence[Address], *, retry: float) -> None:
        if not masters:
            raise ValueError("a proxy needs at least one master")
        if retry <= 0:
            raise ValueError("retry must be positive")
        self.masters = list(masters)
        self.retry = retry
        #: How many attempts have ended: the turn of the list.
        self.turn = 0
        #: The master a redirect named, to try next.
        self.preferred: Address | None = None
        #: The master being tried, if an attempt is under way.
        self.trying: Address | None = None
        #: ``host:port`` of the master being followed (connected, streaming), or "".
        self.following = ""
        #: No attempt before then (after a whole round).
        self.wait_until: float | None = None

    def next_deadline(self) -> float | None:
        """When the next attempt may start, if the rotation is waiting."""
        return self.wait_until if self.trying is None else None

    def next_master(self, now: float) -> Address | None:
        """The master to try at ``now``, or None: wait until :meth:`next_deadline`."""
        if self.trying is not None:
            raise RotationStateError("an attempt is already under way")
        if self.wait_until is not None and now < self.wait_until:
            return None
        self.wait_until = None
        address = self.masters[self.turn % len(self.masters)]
        if self.preferred is not None:
            address, self.preferred = self.preferred, None
        self.trying = address
        return address

    def followed(self) -> None:
        """The attempt under way reached a primary and follows it."""
        if self.trying is None:
            raise RotationStateError("followed with no attempt under way")
        self.following = where(self.trying)

    def attempt_ended(self, now: float) -> bool:
        """The attempt under way ended at ``now`` (refused, failed or lost).

        Returns whether it had been following that master (its loss is worth a line).
        """
        if self.trying is None:
            raise RotationStateError("no attempt under way")
        was_following = self.following == where(self.trying)
        self.trying = None
        self.following = ""
        self.turn += 1
        if self.preferred is None and self.turn % len(self.masters) == 0:
            self.wait_until = now + self.retry  # after a whole round of masters
        return was_following

    def redirect(self, host: str, port: int) -> bool:
        """The supervisor names the primary: try it next. Returns whether the
        attempt under way must end (it does not follow that master)."""
        if self.following == f"{host}:{port}":
            return False
        self.preferred = (host, port)
        return True
