"""Who gets a port's places for unauthenticated connections: the caps, eviction, refusal logs.

A port caps its open connections and those not authenticated yet. At the second
cap a newcomer may take the place of a connection already waiting, chosen by
:meth:`Admission.make_room`: a source address (the peer's host) holding more of the
places than the newcomer's gives up its oldest at once, so a crowd from one host
cannot keep out another's clients (OpenSSH's ``PerSourceMaxStartups`` spirit);
otherwise the oldest of the sources holding the most gives way, only once it has
waited :data:`EVICT_MIN_AGE`. A connection whose credentials are being checked is
never closed. The trio code of :func:`addp.transport.serve` only asks and obeys.
"""

from __future__ import annotations

import logging

import trio

from .link import Link

#: The CLOSE reason of an unauthenticated connection closed to make room for a newer one.
EVICTED = "too many connections not authenticated yet: the oldest is closed first; try again"
#: An unauthenticated connection is closed for a newcomer from its own source (or one
#: holding as many places) only after this many seconds: a crowd from one address then
#: turns that address's places over at most once a second (each admission costs the
#: server a handshake), and a peer that authenticates at once still finds one.
EVICT_MIN_AGE = 1.0
#: Seconds between two log lines about refused connections on one port.
REFUSAL_LOG_INTERVAL = 10.0

_log = logging.getLogger("addp")


def source_of(where: str) -> str:
    """The source address (host) of a peer named ``host:port`` (``?`` stays ``?``)."""
    host, sep, _ = where.rpartition(":")
    return host if sep else where


class RateLog:
    """Lines about refused connections of one kind: the first, then at most one per
    :data:`REFUSAL_LOG_INTERVAL` with the count of those not told."""

    def __init__(self) -> None:
        self.refused = 0
        self._logged_at: float | None = None

    def note(self, where: str, reason: str, now: float) -> None:
        """Count one refusal; log it if the interval since the last line has passed."""
        self.refused += 1
        if self._logged_at is not None and now < self._logged_at + REFUSAL_LOG_INTERVAL:
            return
        more = f" ({self.refused - 1} more refused before it)" if self.refused > 1 else ""
        _log.info("link %s refused: %s%s", where, reason, more)
        self._logged_at, self.refused = now, 0


class Waiting:
    """One connection of a port not authenticated yet: where from, since when, and
    what closing it takes."""

    def __init__(self, where: str, scope: trio.CancelScope, since: float = 0.0) -> None:
        self.where = where
        self.source = source_of(where)
        self.since = since  # when it was let in
        self.scope = scope  # the connection's task (cancelled: closed without a word)
        self.link: Link | None = None  # once its ADDP handshake began: closed with a CLOSE
        self.busy = False  # its credentials are being checked (Link.authenticating)

    async def close(self, reason: str) -> None:
        """Close it: a CLOSE with ``reason`` when it has a link, else cancel its task."""
        if self.link is not None:
            await self.link.aclose(reason)
        else:
            self.scope.cancel()


class Admission:
    """Open and unauthenticated connections of one port, and its refusals (for the log)."""

    def __init__(self) -> None:
        self.open = 0
        #: The unauthenticated connections of each source address, oldest first.
        self._sources: dict[str, dict[Waiting, int]] = {}
        self._count = 0
        self._arrivals = 0  # the order of arrival, for ties between sources
        #: Connections over a cap being refused over TLS now.
        self.refusing = 0
        self._refusals = RateLog()

    @property
    def unauthenticated(self) -> int:
        """How many connections have not authenticated yet."""
        return self._count

    def held(self, source: str) -> int:
        """How many unauthenticated places ``source`` holds."""
        return len(self._sources.get(source, ()))

    def wait(self, waiting: Waiting) -> None:
        """A new connection is not authenticated yet."""
        self._arrivals += 1
        self._sources.setdefault(waiting.source, {})[waiting] = self._arrivals
        self._count += 1

    def done_waiting(self, waiting: Waiting) -> None:
        """``waiting`` authenticated, ended or was evicted (again: nothing happens)."""
        group = self._sources.get(waiting.source)
        if group is None or group.pop(waiting, None) is None:
            return
        self._count -= 1
        if not group:
            del self._sources[waiting.source]

    def make_room(self, source: str, now: float) -> Waiting | None:
        """The connection to close for a newcomer from ``source``, taken out of the
        count (None: none may go, the newcomer is refused).

        Never one whose credentials are being checked. The oldest of a source
        holding at least two places more than ``source`` goes at once; else the
        oldest of the sources holding the most, once it has waited
        :data:`EVICT_MIN_AGE`. Costs one step per source address, not per place.
        """
        victim: Waiting | None = None
        rank = (0, 0)  # (places held, -arrival): the most places, then the oldest
        for group in self._sources.values():
            oldest = next(((w, n) for w, n in group.items() if not w.busy), None)
            if oldest is not None and (len(group), -oldest[1]) > rank:
                victim, rank = oldest[0], (len(group), -oldest[1])
        if victim is None:
            return None
        if rank[0] < self.held(source) + 2 and now - victim.since < EVICT_MIN_AGE:
            return None
        self.done_waiting(victim)
        return victim

    def refusal(
        self, max_connections: int | None, max_unauthenticated: int | None, counted: bool
    ) -> str | None:
        """Why one more connection is refused now, or None to accept it."""
        if max_connections is not None and self.open >= max_connections:
            return f"too many connections: this port serves at most {max_connections}; try later"
        waiting = self.unauthenticated
        if counted and max_unauthenticated is not None and waiting >= max_unauthenticated:
            return (
                f"too many connections not authenticated yet (at most "
                f"{max_unauthenticated}); try later"
            )
        return None

    def log_refusal(self, where: str, reason: str, now: float) -> None:
        """Log the first refusal, then at most one line per interval with the count."""
        self._refusals.note(where, reason, now)
