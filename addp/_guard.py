"""Deadlines a server holds a connection to: authenticate in time, finish each frame in time.

A pure state machine, fed "bytes arrived at t, leaving this much of a frame
buffered", "authenticated at t" and "the reader was paused for d" (the
consumer was behind: the time is this side's, not the peer's); it answers its
next deadline and, once one passed, why the connection must be closed. It
never reads a clock.

Rules:

- ``auth_timeout`` (None: no deadline): the connection must be declared
  authenticated within that many seconds of its start. Answering polls, or
  sending anything else, does not stop this clock.
- ``frame_timeout`` (None: no deadline): a frame whose first byte arrived at
  ``t`` must be complete by ``t + frame_timeout``; a peer dripping one byte
  every few seconds keeps the ADDP keep-alive content but not this. Time the
  reader spent paused (not reading because this side's consumer was behind)
  is not counted against the peer.
- Once expired, the guard stays expired with the first reason.
"""

from __future__ import annotations

#: Default time allowed to finish a frame once its first byte arrived, in seconds.
DEFAULT_FRAME_TIMEOUT = 30.0


class ConnectionGuard:
    """Authentication and frame-progress deadlines of one connection (see module docstring)."""

    __slots__ = (
        "_auth_deadline",
        "_expired",
        "_frame_deadline",
        "auth_timeout",
        "frame_timeout",
    )

    def __init__(
        self,
        now: float,
        *,
        auth_timeout: float | None = None,
        frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    ) -> None:
        for name, value in (("auth_timeout", auth_timeout), ("frame_timeout", frame_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        self.auth_timeout = auth_timeout
        self.frame_timeout = frame_timeout
        self._auth_deadline = None if auth_timeout is None else now + auth_timeout
        self._frame_deadline: float | None = None
        self._expired: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether no authentication deadline is pending (met, or never set)."""
        return self._auth_deadline is None

    @property
    def auth_deadline(self) -> float | None:
        """When the connection must be authenticated by; None: no deadline pending."""
        return self._auth_deadline

    @property
    def expired(self) -> str | None:
        """Why the connection must close (a deadline passed), or None."""
        return self._expired

    def authenticate(self) -> None:
        """The connection authenticated: its authentication deadline is met."""
        self._auth_deadline = None

    def bytes_received(self, now: float, *, buffered: int, completed: int) -> None:
        """Bytes arrived; ``completed`` frames finished and ``buffered`` bytes of the next
        one wait. A frame begun by these bytes gets its deadline from ``now``."""
        if buffered == 0:
            self._frame_deadline = None
        elif (completed or self._frame_deadline is None) and self.frame_timeout is not None:
            self._frame_deadline = now + self.frame_timeout

    def paused(self, seconds: float) -> None:
        """The reader did not read for ``seconds`` (this side was behind): the frame
        deadline moves on by as much. The authentication deadline does not."""
        if seconds > 0 and self._frame_deadline is not None:
            self._frame_deadline += seconds

    @property
    def idle(self) -> bool:
        """Whether no deadline is pending (authenticated, no frame half-way)."""
        return self._auth_deadline is None and self._frame_deadline is None

    def next_deadline(self) -> float | None:
        """When :meth:`check` must next be called; None if never."""
        if self._expired is not None:
            return None
        deadlines = [d for d in (self._auth_deadline, self._frame_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def check(self, now: float) -> str | None:
        """Time is ``now``: the reason to close if a deadline passed, else None."""
        if self._expired is not None:
            return self._expired
        if self._auth_deadline is not None and now >= self._auth_deadline:
            assert self.auth_timeout is not None
            self._expired = f"not authenticated within {self.auth_timeout:g} s"
        elif self._frame_deadline is not None and now >= self._frame_deadline:
            assert self.frame_timeout is not None
            self._expired = f"a frame was not completed within {self.frame_timeout:g} s"
        return self._expired
