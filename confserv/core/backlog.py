"""When a subscriber that reads too little is cut off: back-pressure, as a pure machine.

The publisher never waits for a subscriber: a change it cannot hand over at
once is queued for that subscriber, and :class:`Backlog` counts how many
wait. A subscriber left more than :attr:`Backlog.limit` changes behind is cut
off (its link is ended; it restores from its serial when it comes back), so
that one client that reads nothing holds neither the write path nor memory
without bound. Nothing here reads a clock or touches IO; the decision is by
count alone, so there is no deadline.

Rules:

- Each change queued for the subscriber adds one; when that would make more
  than ``limit`` waiting, the subscriber is cut off instead, for good.
- With ``max_bytes``, each change also adds its size in bytes; when that
  would make more than ``max_bytes`` wait (and something waits already: one
  change alone is always queued), the subscriber is cut off too. So memory
  held for one subscriber is bounded in bytes, whatever the changes' sizes.
- A change written out at once, or a flush that left nothing unsent, leaves
  nothing behind; a flush that left some unsent takes off what it wrote (as
  many as were waiting when it began), never going below zero; the bytes
  still waiting are the ones the flush left unsent.
- The queue's own count and bytes, when the reader takes changes off it,
  replace the machine's (:meth:`Backlog.unread`).
"""

from __future__ import annotations


class Backlog:
    """How far one subscriber is behind, and whether it is cut off (see module docstring).

    Args:
        limit: the most changes that may wait for this subscriber.
        max_bytes: the most bytes that may wait for it (None: no byte limit).
    """

    def __init__(self, limit: int, max_bytes: int | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.limit = limit
        self.max_bytes = max_bytes
        self.behind = 0
        self.bytes_behind = 0
        self.cut_off = False

    def queued(self, size: int = 0) -> bool:
        """One more change (of ``size`` bytes) waits for the subscriber. False: it is
        cut off (now or before)."""
        if self.cut_off:
            return False
        too_many = self.behind >= self.limit
        too_big = (
            self.max_bytes is not None
            and self.behind > 0
            and self.bytes_behind + size > self.max_bytes
        )
        if too_many or too_big:
            self.cut_off = True
            return False
        self.behind += 1
        self.bytes_behind += size
        return True

    def written(self) -> None:
        """Everything queued so far was written out (nothing waits any more)."""
        self.behind = 0
        self.bytes_behind = 0

    def flushed(self, waiting_at_start: int, unsent: int) -> None:
        """A flush begun with ``waiting_at_start`` queued ended with ``unsent`` changes'
        bytes still unwritten: only those still unwritten count."""
        self.behind = 0 if unsent == 0 else max(0, self.behind - waiting_at_start)
        self.bytes_behind = unsent if self.behind else 0

    def unread(self, count: int, size: int | None = None) -> None:
        """The subscriber's queue holds ``count`` changes (of ``size`` bytes, when
        known) not yet taken by its reader."""
        if count < 0:
            raise ValueError(f"a queue cannot hold {count} changes")
        if size is not None and size < 0:
            raise ValueError(f"a queue cannot hold {size} bytes")
        self.behind = count
        if size is not None:
            self.bytes_behind = size

    def cut(self) -> None:
        """Cut the subscriber off for another reason (its caches may be wrong)."""
        self.cut_off = True
