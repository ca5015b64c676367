"""The operator's log: one line per event, Genesys style, with a stable numeric id.

``HH:MM:SS.mmm Std 20110 Client 'scs' (SCS) registered from 127.0.0.1:5301``

Levels are Genesys': ``Alr`` (alarm), ``Std`` (standard), ``Int``
(interaction), ``Trc`` (trace), ``Dbg`` (debug). ``[log] verbose`` chooses
the lowest level written and ``[log] all`` where lines go. Every id is listed
with what to do about it in ``docs/log-events.md``; the supervisor (``scs``)
declares its own events with the same machinery.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from .catalog import VERBOSITY, Level, LogEvent
from .peer_text import peer_text, source_of
from .ratelimit import DEFAULT_INTERVAL, RateLimiter, Summary

__all__ = ["VERBOSITY", "EventLog", "Level", "LogEvent"]

#: Longest field written in a line; longer ones are cut (``… (N chars)``). Fields
#: quoting a peer are cut shorter where they are made (200 characters).
FIELD_LIMIT = 1000
#: Events rate-limited besides alarms: refusals a peer can cause at will
#: (registration refused, request refused, bad ADDP peer).
LIMITED_IDS = frozenset({20112, 20113, 20115, 20127})


class EventLog:
    """Writes events as lines to a stream (plain, coloured with rich, or JSON lines)."""

    def __init__(
        self,
        app: str,
        out: TextIO | None = None,
        *,
        verbose: str = "standard",
        json_lines: bool = False,
        color: bool = False,
        rate_interval: float = DEFAULT_INTERVAL,
        limited_ids: frozenset[int] = LIMITED_IDS,
    ) -> None:
        self.app = app
        self.out = out if out is not None else sys.stderr
        self.threshold = VERBOSITY[verbose]
        self.json_lines = json_lines
        self._console: Any = None
        if color and not json_lines:
            from rich.console import Console

            self._console = Console(file=self.out, highlight=False, soft_wrap=True)
        self.lines_written = 0
        #: Repeats of a peer's alarm (or of a listed refusal) by one peer, or of one
        #: text, are written once per ``rate_interval`` seconds, then summed up.
        self.limiter = RateLimiter(rate_interval)
        self.limited_ids = limited_ids
        self.lines_held = 0
        #: Told every event emitted, written or not (metrics count them); each is
        #: called with the event and its fields, and must not raise.
        self.observers: list[Callable[[LogEvent, Mapping[str, Any]], None]] = []

    @classmethod
    def from_settings(cls, app: str, verbose: str, destination: str) -> EventLog:
        """Build from ``[log] verbose`` and ``[log] all`` (stdout, stderr or a file path)."""
        if destination == "stdout":
            return cls(app, sys.stdout, verbose=verbose, color=sys.stdout.isatty())
        if destination == "stderr":
            return cls(app, sys.stderr, verbose=verbose, color=sys.stderr.isatty())
        path = Path(destination)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(app, path.open("a", encoding="utf-8", buffering=1), verbose=verbose)

    def enabled(self, level: Level) -> bool:
        """Whether lines of ``level`` are written."""
        return self.threshold is not None and level >= self.threshold

    def emit(self, event: LogEvent, _tail: str = "", **fields: Any) -> str:
        """Write ``event`` with its fields; returns the message text.

        Every field but numbers is written on one line (control characters
        escaped) and cut at :data:`FIELD_LIMIT` characters. An alarm naming a
        ``peer``, or an event of :attr:`limited_ids`, repeated for one source
        address (or with one text) is written once per ``rate_interval``; the repeats held
        back are told in one line with their count. (Alarms of the server's own
        making, a failover, are all written.) ``_tail`` (a traceback) is written
        as is, after the line.
        """
        for observer in self.observers:
            observer(event, fields)  # (the raw fields: numbers stay numbers)
        fields = {key: _safe(value) for key, value in fields.items()}
        text = event.template.format(**fields)
        if not self.enabled(event.level):
            return text
        now = time.time()
        for summary in self.limiter.due(now):
            self._summary(summary, now)
        if event.id in self.limited_ids or (event.level >= Level.ALR and "peer" in fields):
            # By source address: a peer that opens a new connection for every try
            # has a new port each time (the fuzz's finding).
            key = (event.id, source_of(fields["peer"]) if "peer" in fields else text)
            note: tuple[LogEvent, str] = (event, text)
            if not self.limiter.allow(key, now, note):
                self.lines_held += 1
                return text
        self._write(event, text, fields, now, _tail)
        return text

    def flush_summaries(self) -> None:
        """Write the summary of every rate-limit window that is over (for a timer:
        a burst that stopped is told without waiting for the next line)."""
        now = time.time()
        for summary in self.limiter.due(now):
            self._summary(summary, now)

    def _summary(self, summary: Summary, now: float) -> None:
        last = summary.last
        assert isinstance(last, tuple)
        event, text = last
        more = f" ({summary.count} more in the last {summary.seconds:.0f} s)"
        self._write(event, text + more, {}, now, "")

    def _write(
        self, event: LogEvent, text: str, fields: dict[str, Any], now: float, tail: str
    ) -> None:
        if self.json_lines:
            record = {
                "time": now,
                "app": self.app,
                "level": event.level.tag,
                "id": event.id,
                "msg": text,
                **{k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool))},
            }
            if tail:
                record["traceback"] = tail
            self.out.write(json.dumps(record) + "\n")
        else:
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
            )
            line = f"{stamp} {event.level.tag} {event.id:05d} {text}"
            if self._console is not None:
                style = {Level.ALR: "bold red", Level.STD: "", Level.INT: "cyan"}.get(
                    event.level, "dim"
                )
                self._console.print(line + tail, style=style or None, markup=False)
            else:
                self.out.write(line + tail + "\n")
        self.out.flush()
        self.lines_written += 1

    def handler(
        self, event: LogEvent, *, field: str = "text", traceback: bool = True
    ) -> logging.Handler:
        """A logging handler that writes library records (e.g. ADDP traces) as ``event``,
        the record's text in ``field``. ``traceback`` False: a failure's exception is
        summed up in one line (a driver's retries: their stack says nothing new)."""
        log = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                text, tail = record.getMessage(), ""
                if record.exc_info and record.exc_info[1] is not None:
                    if traceback:  # a failure: its traceback too, or nobody can fix it
                        tail = "\n" + logging.Formatter().formatException(record.exc_info)
                    else:
                        exc = record.exc_info[1]
                        text += f": {type(exc).__name__}: {exc}"
                log.emit(event, _tail=tail, **{field: text})

        return _Handler()


def _safe(value: Any) -> Any:
    """A field as written: numbers as they are, anything else as one bounded line."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return peer_text(value if isinstance(value, str) else str(value), FIELD_LIMIT)
