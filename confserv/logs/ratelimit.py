"""Repeated log lines folded into one line with a count: a pure rate limiter.

Keyed by whatever the caller chooses (an event id and a peer). The first
occurrence of a key is written at once; further ones within ``interval``
seconds of it are counted, not written. Once the interval is over, the next
occurrence is written again, and the count of those held back is reported
exactly once: by :meth:`RateLimiter.due` (called on any later event, or by a
timer) as a summary ``(key, count, interval)``, so a burst that stops is
still told. Memory is bounded: at most ``max_keys`` keys are kept; when more
are active, the oldest window is summed up early. It never reads a clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

#: Default seconds between two lines of one key.
DEFAULT_INTERVAL = 10.0
#: Default number of keys followed at once.
DEFAULT_MAX_KEYS = 1024


@dataclass(frozen=True, slots=True)
class Summary:
    """``count`` occurrences of ``key`` were held back in the ``seconds`` since its last
    line; ``last`` is what the caller passed with the last of them."""

    key: Hashable
    count: int
    seconds: float
    last: object = None


@dataclass(slots=True)
class _Window:
    opened: float
    held: int = 0
    last: object = None


class RateLimiter:
    """At most one line per key per interval, the rest counted (see module docstring)."""

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, *, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.interval = interval
        self.max_keys = max_keys
        # Insertion order is the order windows opened in: the oldest comes first.
        self._windows: dict[Hashable, _Window] = {}
        self._pending: list[Summary] = []

    def allow(self, key: Hashable, now: float, note: object = None) -> bool:
        """One occurrence of ``key`` at ``now``: True to write it, False when it is held
        (``note`` is kept, for the summary, as the last held one's).

        A window of ``key`` that is over is closed here; its summary waits for
        the next :meth:`due` (call :meth:`due` first to write it before this line).
        """
        window = self._windows.get(key)
        if window is not None and now < window.opened + self.interval:
            window.held += 1
            window.last = note
            return False
        if window is not None:
            self._close(key, window, now)
        self._windows[key] = _Window(opened=now)
        return True

    def due(self, now: float) -> list[Summary]:
        """Summaries of the windows that are over (or closed early to stay within
        ``max_keys``); each held occurrence is reported exactly once."""
        # Windows are kept in the order they opened: the ones over come first.
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now < window.opened + self.interval and len(self._windows) < self.max_keys:
                break
            self._close(key, window, now)
        out, self._pending = self._pending, []
        return out

    def _close(self, key: Hashable, window: _Window, now: float) -> None:
        del self._windows[key]
        if window.held:
            seconds = min(max(now - window.opened, 0.0), self.interval)
            self._pending.append(Summary(key, window.held, seconds, window.last))

    def next_deadline(self) -> float | None:
        """When the next window with held occurrences ends (for a timer); None if none."""
        ends = [w.opened + self.interval for w in self._windows.values() if w.held]
        return min(ends) if ends else None

    def __len__(self) -> int:
        return len(self._windows)
