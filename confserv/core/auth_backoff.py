"""Back-off after failed authentication, per key (a source address, a user): pure.

Fed the current time; returns what to log and the next deadline. After
``threshold`` failures within ``window`` seconds a key is *blocked*: its
attempts are refused without being checked for ``delay`` seconds, where the
delay starts at ``base_delay`` and doubles with every further failure up to
``max_delay``. A key with no attempt for ``quiet`` seconds (and not blocked) is
forgotten. Each blocking episode is logged twice at most: :class:`Blocked` when
it starts and :class:`Forgotten` (with the counts) when it ends, never a line
per attempt. At most ``max_keys`` keys are kept (the least recently active is
dropped first), so a flood of invented user names cannot grow it without bound.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """When a key is blocked, and for how long."""

    threshold: int = 5
    window: float = 60.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    quiet: float = 600.0
    max_keys: int = 10_000


@dataclass(frozen=True, slots=True)
class Blocked:
    """``key`` is blocked: ``failures`` failures within the window; for ``delay`` s."""

    key: str
    failures: int
    delay: float


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A blocked ``key`` was quiet long enough: ``failures`` failed and ``refused``
    refused attempts over ``seconds`` seconds."""

    key: str
    failures: int
    refused: int
    seconds: float


Event = Blocked | Forgotten


@dataclass(slots=True)
class _Entry:
    recent: collections.deque[float]
    last: float
    started: float
    failures: int = 0
    refused: int = 0
    level: int = -1  # -1: not blocked in this episode; else the doublings so far
    until: float = 0.0


@dataclass(slots=True)
class Backoff:
    """The back-off state of every key (see the module docstring)."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    _entries: collections.OrderedDict[str, _Entry] = field(default_factory=collections.OrderedDict)

    def __len__(self) -> int:
        return len(self._entries)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0.0: check this attempt). A refused
        attempt is counted, but it does not extend the block."""
        entry = self._entries.get(key)
        if entry is None or now >= entry.until:
            return 0.0
        entry.refused += 1
        entry.last = now
        self._entries.move_to_end(key)
        return entry.until - now

    def delay(self, key: str, now: float) -> float:
        """Seconds ``key`` stays blocked from ``now`` (0.0: not blocked); counts nothing."""
        entry = self._entries.get(key)
        return 0.0 if entry is None else max(0.0, entry.until - now)

    def failed(self, key: str, now: float) -> list[Event]:
        """A checked attempt of ``key`` failed: a :class:`Blocked` when it starts a block."""
        p = self.policy
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(collections.deque(maxlen=p.threshold), now, now)
            self._entries[key] = entry
        self._entries.move_to_end(key)
        entry.recent.append(now)
        entry.failures += 1
        entry.last = now
        events: list[Event] = []
        if entry.level >= 0:
            entry.level += 1
        elif len(entry.recent) == p.threshold and now - entry.recent[0] <= p.window:
            entry.level = 0
            events.append(Blocked(key, len(entry.recent), p.base_delay))
        if entry.level >= 0:
            entry.until = now + min(p.max_delay, p.base_delay * 2.0 ** min(entry.level, 60))
        while len(self._entries) > p.max_keys:
            self._entries.popitem(last=False)
        return events

    def succeeded(self, key: str) -> None:
        """A checked attempt of ``key`` succeeded: it starts afresh (nothing logged)."""
        self._entries.pop(key, None)

    def tick(self, now: float) -> list[Event]:
        """Forget the keys quiet for ``quiet`` seconds; a :class:`Forgotten` for each that
        had been blocked."""
        events: list[Event] = []
        for key in [k for k, e in self._entries.items() if self._forgettable(e, now)]:
            entry = self._entries.pop(key)
            if entry.level >= 0:
                events.append(
                    Forgotten(key, entry.failures, entry.refused, entry.last - entry.started)
                )
        return events

    def _forgettable(self, entry: _Entry, now: float) -> bool:
        return now >= entry.until and now - entry.last >= self.policy.quiet

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to forget (None: nothing is kept)."""
        return min(
            (max(e.until, e.last + self.policy.quiet) for e in self._entries.values()),
            default=None,
        )

    def blocked(self, key: str, now: float) -> bool:
        """Whether ``key`` is blocked at ``now`` (for tests and status)."""
        entry = self._entries.get(key)
        return entry is not None and now < entry.until
