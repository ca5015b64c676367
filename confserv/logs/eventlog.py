"""The operator's log: one line per event, Genesys style, with a stable numeric id.

``2026-12-02 05:48:06.123 Std 20110 Client 'scs' (SCS) registered from 127.0.0.1:5301``

Levels are Genesys': ``Alr`` (alarm), ``Std`` (standard), ``Int``
(interaction), ``Trc`` (trace), ``Dbg`` (debug). ``[log] verbose`` chooses
the lowest level written and ``[log] all`` where lines go. Every id is listed
with what to do about it in ``docs/log-events.md``; the supervisor (``scs``)
declares its own events with the same machinery. Lines go through the standard
:mod:`logging` machinery (:mod:`.handlers`): files rotate or are reopened with
stock handlers, and syslog or JSON lines are a setting.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from .catalog import VERBOSITY, Level, LogEvent
from .handlers import LOGGING_LEVEL, file_handler, quiet_errors, stream_handler, syslog_handler
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
    """Writes events as lines through :mod:`logging` handlers (text, coloured, JSON).

    Each event becomes a :class:`logging.LogRecord` of a logger of its own (not
    the root's: a library's configuration does not reach it) whose handlers are
    the stream given (``out``, stderr by default) and any added with
    :meth:`add_handler` (a file, syslog: see :mod:`.handlers`).
    """

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
        stream: bool = True,
    ) -> None:
        self.app = app
        self.out = out if out is not None else sys.stderr
        self.threshold = VERBOSITY[verbose]
        self.json_lines = json_lines
        #: The logger events go through (its own: ``propagate`` is off).
        self.logger = logging.Logger(f"cfgha.{app}", logging.NOTSET)
        self.logger.propagate = False
        if stream:
            self.add_handler(stream_handler(self.out, json_lines=json_lines, color=color))
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
    def from_settings(
        cls,
        app: str,
        verbose: str,
        destination: str,
        *,
        json_lines: bool = False,
        segment: int | None = None,
        expire: int = 10,
    ) -> EventLog:
        """Build from ``[log]``: ``verbose``, ``all`` (stdout, stderr, syslog or a file
        path), ``format`` (``json_lines``), ``segment`` and ``expire``. Raises
        :class:`OSError` when the file or syslog cannot be opened."""
        if destination in ("stdout", "stderr"):
            out = sys.stdout if destination == "stdout" else sys.stderr
            color = out.isatty() and not json_lines
            return cls(app, out, verbose=verbose, json_lines=json_lines, color=color)
        log = cls(app, verbose=verbose, json_lines=json_lines, stream=False)
        if destination == "syslog":
            log.add_handler(syslog_handler(json_lines=json_lines))
        else:
            path = Path(destination)
            log.add_handler(
                file_handler(path, json_lines=json_lines, segment=segment, expire=expire)
            )
        return log

    def add_handler(self, handler: logging.Handler) -> None:
        """Write every line to ``handler`` too (any :mod:`logging` handler); one that
        cannot write says so once on stderr, not with a traceback at each line."""
        quiet_errors(handler, self.app)
        self.logger.addHandler(handler)

    @property
    def handlers(self) -> list[logging.Handler]:
        """Where lines go."""
        return list(self.logger.handlers)

    def reopen(self) -> int:
        """Close every log file; each is opened again (by its path) at its next line:
        after logrotate moved it (``kill -HUP``). Returns how many were closed."""
        count = 0
        for handler in self.logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.close()
                count += 1
        return count

    def close(self) -> None:
        """Flush and close every handler (the process is ending)."""
        for handler in self.logger.handlers:
            handler.close()

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
        record = logging.LogRecord(
            self.logger.name, LOGGING_LEVEL[event.level], "", 0, text, None, None
        )
        record.created, record.msecs = now, (now - int(now)) * 1000
        record.event_app = self.app
        record.event_id = event.id
        record.event_level = event.level.tag
        record.event_fields = {
            k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool))
        }
        record.event_tail = tail
        self.logger.handle(record)
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
