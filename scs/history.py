"""The failover history: one record per failover, told from the supervisor's own events.

A failover reads in the event log as a story (see :mod:`scs.events`): detected
(40301 died, 40302 silent, 40313 no primary, 40401 a switchover asked),
decided (40304 proof of death, 40305 the lease), promoted (40306: epoch, ms),
proxies redirected (40308), the old primary started again (40101), healthy
(40309). :class:`FailoverStories` is fed those events as they are emitted
(sans-IO: the event, its fields, the wall-clock time) and returns each story
once it ends: healthy again, cancelled (40303: the primary came back within
the wait), failed (40402, 40311), cut by the next fault of the same pair, or
still open when the supervisor stops (40002). :mod:`scs.history_file` keeps
them on disk for ``scs history``.

Invariants (tests/scs/test_history.py): at most one open story per pair; a
story's times never go backwards; every story started is returned once, at
the latest by :meth:`FailoverStories.close_all`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Events that start a story, and what each says was seen.
STARTS: dict[int, str] = {
    40301: "died",
    40302: "silent",
    40313: "no primary",
    40401: "switchover",
}
#: Events that say why the backup is promoted.
CAUSES: dict[int, str] = {
    40304: "proof of death",
    40305: "lease expired",
    40313: "no primary",
    40401: "switchover",
}
#: Events that end a story without a healthy pair, and the outcome each names.
ENDS: dict[int, str] = {
    40303: "cancelled: the primary came back within the wait",
    40402: "switchover failed",
    40311: "no backup could take over",
}


@dataclass(slots=True)
class FailoverRecord:
    """One failover as the history keeps it (times: ``time.time()``, None: not reached)."""

    pair: str
    #: The primary the fault was about.
    old_primary: str
    #: ``died``, ``silent``, ``no primary`` or ``switchover``, and the log's words for it.
    seen: str
    detail: str
    fault_at: float
    cause: str | None = None
    decided_at: float | None = None
    new_primary: str | None = None
    epoch: int | None = None
    #: 40306's milliseconds from the fault seen to the backup promoted.
    promote_ms: float | None = None
    promoted_at: float | None = None
    proxies_redirected: int = 0
    old_primary_back_at: float | None = None
    healthy_at: float | None = None
    #: ``healthy``, or why the story ended without a healthy pair.
    outcome: str = "open"
    #: Lines of the story (event ids, in order), for the record's reader.
    events: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (one line of the history file)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailoverRecord:
        """A record read back; unknown keys (a newer version's) are ignored."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class FailoverStories:
    """The stories of every pair, open until they end (see the module docstring)."""

    def __init__(self) -> None:
        self.open: dict[str, FailoverRecord] = {}

    def feed(self, event_id: int, fields: Mapping[str, Any], now: float) -> list[FailoverRecord]:
        """Take one emitted event; the stories it ends (oldest first)."""
        pair = fields.get("pair")
        ended: list[FailoverRecord] = []
        if event_id == 40002:  # the supervisor stops: what is open is told as it is
            return self.close_all("open when the supervisor stopped")
        if event_id == 40101:
            return self._restarted(str(fields.get("server")), now)
        if event_id == 40308:
            self._redirected(str(fields.get("server")))
            return []
        if not isinstance(pair, str):
            return []
        story = self.open.get(pair)
        if event_id in STARTS and not (event_id == 40313 and story is not None):
            if story is not None:
                ended.append(self._end(pair, "cut by the next fault"))
            story = self._start(event_id, pair, fields, now)
        if story is None:
            return ended
        if event_id in CAUSES and story.cause is None:
            decided = max(now, story.fault_at)
            if story.promoted_at is not None:
                # told after the promotion (found by hypothesis): no later than it
                decided = min(decided, story.promoted_at)
            story.cause, story.decided_at = CAUSES[event_id], decided
        if event_id == 40306:
            story.new_primary = str(fields.get("server"))
            story.epoch = _int(fields.get("epoch"))
            ms = fields.get("ms")
            story.promote_ms = float(ms) if isinstance(ms, (int, float)) else None
            story.promoted_at = max(now, story.decided_at or story.fault_at)
        if event_id not in STARTS:
            story.events.append(event_id)
        if event_id == 40309:
            story.healthy_at = max(now, story.promoted_at or story.decided_at or story.fault_at)
            ended.append(self._end(pair, "healthy"))
        elif event_id in ENDS:
            ended.append(self._end(pair, ENDS[event_id]))
        return ended

    def close_all(self, outcome: str) -> list[FailoverRecord]:
        """End every open story with ``outcome``."""
        return [self._end(pair, outcome) for pair in list(self.open)]

    def _start(
        self, event_id: int, pair: str, fields: Mapping[str, Any], now: float
    ) -> FailoverRecord:
        seen = STARTS[event_id]
        if event_id == 40401:
            old, detail = str(fields.get("primary")), f"asked by {fields.get('who')}"
        elif event_id == 40313:
            old, detail = "", f"no primary for {fields.get('after')} s"
        else:
            old = str(fields.get("server"))
            detail = str(fields.get("how") if event_id == 40301 else fields.get("reason"))
        story = FailoverRecord(pair, old, seen, detail, now, events=[event_id])
        self.open[pair] = story
        return story

    def _end(self, pair: str, outcome: str) -> FailoverRecord:
        story = self.open.pop(pair)
        story.outcome = outcome
        return story

    def _restarted(self, server: str, now: float) -> list[FailoverRecord]:
        for story in self.open.values():
            back = story.old_primary_back_at is not None
            if story.old_primary == server and story.promoted_at is not None and not back:
                story.old_primary_back_at = max(now, story.promoted_at)
                story.events.append(40101)
        return []

    def _redirected(self, server: str) -> None:
        for story in self.open.values():
            if story.new_primary == server:
                story.proxies_redirected += 1
                story.events.append(40308)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
