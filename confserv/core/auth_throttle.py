"""Thin glue over :class:`~confserv.core.auth_backoff.Backoff`: trio's clock and the log.

One :class:`AuthThrottle` per thing guessed (client passwords, the management
secret). Before checking an attempt call :meth:`AuthThrottle.check` with the
attempt's keys (it raises :class:`LoginThrottledError` while one is blocked),
then :meth:`AuthThrottle.failed` or :meth:`AuthThrottle.succeeded`. A key is
``"<kind> <value>"`` (``"source 10.0.0.9"``, ``"user 'default'"``); each kind
can have its own policy, and has its own state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import trio

from confserv.logs import events
from confserv.logs.catalog import LogEvent
from confserv.logs.peer_text import source_of
from confserv.wire.errors import AuthError

from .auth_backoff import Backoff, BackoffPolicy, Blocked, Event

#: How often the keys quiet for long are forgotten, at most (seconds).
_TICK = 1.0

Emit = Callable[..., object]


class LoginThrottledError(AuthError):
    """Too many failed attempts from this source or for this user: refused unchecked."""


__all__ = ["AuthThrottle", "Emit", "LoginThrottledError", "source_of"]


class AuthThrottle:
    """Failed-attempt back-off for ``what`` (e.g. "login"), logging through ``emit``
    (``started`` when a key starts being held back, ``ended`` when it is forgotten)."""

    def __init__(
        self,
        what: str,
        policy: BackoffPolicy | None = None,
        emit: Emit | None = None,
        *,
        kinds: Mapping[str, BackoffPolicy] | None = None,
        started: LogEvent = events.AUTH_BACKOFF_STARTED,
        ended: LogEvent = events.AUTH_BACKOFF_ENDED,
    ) -> None:
        self.what = what
        self.emit = emit
        self._started, self._ended = started, ended
        self._default = policy or BackoffPolicy()
        self._backoffs = {kind: Backoff(p) for kind, p in (kinds or {}).items()}
        self._next_tick = -math.inf

    def backoff(self, key: str) -> Backoff:
        """The state of ``key``'s kind (the word before its first space)."""
        kind = key.split(" ", 1)[0]
        found = self._backoffs.get(kind)
        if found is None:
            found = self._backoffs[kind] = Backoff(self._default)
        return found

    def _log(self, event: LogEvent, **fields: object) -> None:
        if self.emit is not None:
            self.emit(event, **fields)

    def _events(self, happened: list[Event]) -> None:
        for e in happened:
            if isinstance(e, Blocked):
                self._log(
                    self._started,
                    what=self.what,
                    key=e.key,
                    failures=e.failures,
                    window=f"{self.backoff(e.key).policy.window:g}",
                    delay=f"{e.delay:g}",
                )
            else:
                self._log(
                    self._ended,
                    what=self.what,
                    key=e.key,
                    failures=e.failures,
                    refused=e.refused,
                    seconds=f"{e.seconds:.0f}",
                )

    def _now(self) -> float:
        now = trio.current_time()
        if now >= self._next_tick:
            self._next_tick = now + _TICK
            for backoff in list(self._backoffs.values()):
                self._events(backoff.tick(now))
        return now

    def check(self, *keys: str) -> None:
        """Raise LoginThrottledError while any of ``keys`` is blocked."""
        now = self._now()
        waits = [self.backoff(key).wait(key, now) for key in keys]
        wait = max(waits, default=0.0)
        if wait > 0:
            raise LoginThrottledError(
                f"too many failed {self.what} attempts: try again in {math.ceil(wait)} s"
            )

    def failed(self, *keys: str) -> None:
        """A checked attempt with ``keys`` failed."""
        now = self._now()
        for key in keys:
            self._events(self.backoff(key).failed(key, now))

    def succeeded(self, *keys: str) -> None:
        """A checked attempt with ``keys`` succeeded: they start afresh."""
        for key in keys:
            self.backoff(key).succeeded(key)
