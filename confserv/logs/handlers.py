"""Where event lines go, through the standard :mod:`logging` machinery.

An :class:`~confserv.logs.eventlog.EventLog` turns each event into a
:class:`logging.LogRecord` (its id, level tag and fields as attributes) and
hands it to stock handlers with one of the formatters here:

- :class:`EventTextFormatter`: ``2026-12-02 05:48:06.123 Std 20110 text``
  (local time, the date first: a file read days later, or a journal, says when);
- :class:`EventJsonFormatter`: one JSON object per line (``time``, ``date``,
  ``app``, ``level``, ``id``, ``msg`` and the event's plain fields);
- :class:`RichConsoleHandler`: the text line coloured by level, on a terminal.

:func:`file_handler` is the handler a log file gets: with ``segment`` a
:class:`~logging.handlers.RotatingFileHandler` (``expire`` files kept), else a
:class:`~logging.handlers.WatchedFileHandler`, which reopens the file when
logrotate moved it away (and, opened for appending, stays right under
``copytruncate`` too). ``syslog`` is :class:`~logging.handlers.SysLogHandler`
on ``/dev/log``. Any other stock handler can be added with
:meth:`EventLog.add_handler <confserv.logs.eventlog.EventLog.add_handler>`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .catalog import Level

__all__ = [
    "LOGGING_LEVEL",
    "EventJsonFormatter",
    "EventTextFormatter",
    "RichConsoleHandler",
    "file_handler",
    "parse_stamp",
    "quiet_errors",
    "stamp",
    "stream_handler",
    "syslog_handler",
]

#: The :mod:`logging` level of each event level (for handlers and filters of a
#: standard configuration: an alarm is an ERROR, a trace is DEBUG).
LOGGING_LEVEL: dict[Level, int] = {
    Level.ALR: logging.ERROR,
    Level.STD: logging.INFO,
    Level.INT: logging.INFO - 5,
    Level.TRC: logging.DEBUG,
    Level.DBG: logging.DEBUG - 5,
}

#: Syslog's severity of each event level (the handler asks by logging level name).
_SYSLOG_PRIORITY: dict[str, str] = {
    "ERROR": "err",
    "INFO": "info",
    "Level 15": "info",
    "DEBUG": "debug",
    "Level 5": "debug",
}


def stamp(created: float, *, date: bool = True) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` (local time) of ``created``; without the date when
    ``date`` is False (syslog and the journal give their own)."""
    fmt = "%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S"
    return time.strftime(fmt, time.localtime(created)) + f".{int(created * 1000) % 1000:03d}"


def parse_stamp(text: str) -> float:
    """The ``time.time()`` of a :func:`stamp` with its date (local time); raises
    :class:`ValueError` when ``text`` is not one."""
    whole, _, millis = text.partition(".")
    if len(millis) != 3 or not millis.isdigit():
        raise ValueError(f"not a log line's time: {text!r}")
    return time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


class EventTextFormatter(logging.Formatter):
    """A Genesys-style line: the time, the level tag, the event id, the text; a
    traceback (``record.event_tail``) after it as is."""

    def __init__(self, *, date: bool = True) -> None:
        super().__init__()
        self.date = date

    def format(self, record: logging.LogRecord) -> str:
        """The line (no line end: the handler adds it)."""
        return line_of(record, date=self.date)


def line_of(record: logging.LogRecord, *, date: bool = True) -> str:
    """The text line of an event record (a record of another source: its message)."""
    tag = getattr(record, "event_level", None)
    event_id = getattr(record, "event_id", None)
    text = record.getMessage()
    if tag is None or event_id is None:
        return f"{stamp(record.created, date=date)} {record.levelname} {text}"
    return f"{stamp(record.created, date=date)} {tag} {event_id:05d} {text}" + getattr(
        record, "event_tail", ""
    )


class EventJsonFormatter(logging.Formatter):
    """One JSON object per event: ``time`` (seconds since the epoch), ``date`` (ISO
    8601 with the zone), ``app``, ``level``, ``id``, ``msg``, the event's plain
    fields and, after a failure, ``traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        """The object, on one line."""
        out: dict[str, Any] = {
            "time": record.created,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.created * 1000) % 1000:03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "app": getattr(record, "event_app", record.name),
            "level": getattr(record, "event_level", record.levelname),
            "id": getattr(record, "event_id", None),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "event_fields", {})
        out |= {k: v for k, v in fields.items() if k not in out}
        tail = getattr(record, "event_tail", "")
        if tail:
            out["traceback"] = tail.lstrip("\n")
        return json.dumps(out)


_STYLES = {"Alr": "bold red", "Std": "", "Int": "cyan"}


class RichConsoleHandler(logging.Handler):
    """Writes each line through a :class:`rich.console.Console`, coloured by level
    (a terminal only; inside rich's ``Live`` the line goes above the table)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        from rich.console import Console  # (only a terminal pays for it)

        self.console = Console(file=out, highlight=False, soft_wrap=True)
        self.setFormatter(EventTextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Print the line; an error is handled as every handler's is."""
        try:
            style = _STYLES.get(getattr(record, "event_level", ""), "dim")
            self.console.print(self.format(record), style=style or None, markup=False)
            self.console.file.flush()
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)


def stream_handler(out: TextIO, *, json_lines: bool, color: bool) -> logging.Handler:
    """The handler for a stream: coloured on a terminal, else plain text or JSON."""
    if color and not json_lines:
        return RichConsoleHandler(out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(EventJsonFormatter() if json_lines else EventTextFormatter())
    return handler


def file_handler(
    path: Path, *, json_lines: bool = False, segment: int | None = None, expire: int = 10
) -> logging.Handler:
    """A log file's handler: rotated at ``segment`` bytes (``expire`` old files kept), or,
    without ``segment``, reopened whenever the file at ``path`` is no longer the one open.
    Raises :class:`OSError` when the file cannot be opened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler
    if segment is not None:
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=segment, backupCount=expire, encoding="utf-8"
        )
    else:
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(EventJsonFormatter() if json_lines else EventTextFormatter())
    return handler


def syslog_handler(address: str = "/dev/log", *, json_lines: bool = False) -> logging.Handler:
    """Lines to the local syslog (or journald's socket there), facility ``daemon``,
    prefixed ``<app>:``; the time is syslog's own. Raises :class:`OSError` when
    ``address`` does not answer."""
    handler = _SysLog(address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    handler.setFormatter(_SyslogFormatter(json_lines))
    return handler


def quiet_errors(handler: logging.Handler, app: str) -> None:
    """A handler that cannot write (a full disk, a gone syslog) says so in one line on
    the process's stderr, once until it writes again, instead of :mod:`logging`'s
    traceback at every line."""
    failures = [0, 0]  # [failed lines in a row, failed during the current line]
    emit = handler.emit

    def guarded(record: logging.LogRecord) -> None:
        failures[1] = 0
        emit(record)
        failures[0] = failures[0] + 1 if failures[1] else 0

    def report(record: logging.LogRecord) -> None:
        del record
        failures[1] = 1
        if failures[0] == 0 and sys.__stderr__ is not None:
            print(
                f"{app}: cannot write the log to {_where(handler)}: {sys.exc_info()[1]} "
                "(lines are lost until it can)",
                file=sys.__stderr__,
            )

    handler.emit = guarded  # type: ignore[method-assign]
    handler.handleError = report  # type: ignore[method-assign]


def _where(handler: logging.Handler) -> str:
    if isinstance(handler, logging.FileHandler):
        return handler.baseFilename
    if isinstance(handler, logging.handlers.SysLogHandler):
        return f"syslog {handler.address}"
    return type(handler).__name__


class _SysLog(logging.handlers.SysLogHandler):
    """Syslog with the severities of the event levels (alarms are ``err``)."""

    def mapPriority(self, levelName: str) -> str:  # (logging's names)
        return _SYSLOG_PRIORITY.get(levelName, "info")


class _SyslogFormatter(logging.Formatter):
    """``<app>: Std 20110 text`` (syslog adds the time and host)."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json = EventJsonFormatter() if json_lines else None

    def format(self, record: logging.LogRecord) -> str:
        app = getattr(record, "event_app", record.name)
        if self.json is not None:
            return f"{app}: {self.json.format(record)}"
        return f"{app}: " + line_of(record, date=False).split(" ", 1)[1]
