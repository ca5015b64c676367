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
from pathlib import Path
from typing import Any, TextIO

from .catalog import VERBOSITY, Level, LogEvent

__all__ = ["VERBOSITY", "EventLog", "Level", "LogEvent"]


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

    def emit(self, event: LogEvent, **fields: Any) -> str:
        """Write ``event`` with its fields; returns the message text."""
        text = event.template.format(**fields)
        if not self.enabled(event.level):
            return text
        now = time.time()
        if self.json_lines:
            record = {
                "time": now,
                "app": self.app,
                "level": event.level.tag,
                "id": event.id,
                "msg": text,
                **{k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool))},
            }
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
                self._console.print(line, style=style or None, markup=False)
            else:
                self.out.write(line + "\n")
        self.out.flush()
        self.lines_written += 1
        return text

    def handler(
        self, event: LogEvent, *, field: str = "text", traceback: bool = True
    ) -> logging.Handler:
        """A logging handler that writes library records (e.g. ADDP traces) as ``event``,
        the record's text in ``field``. ``traceback`` False: a failure's exception is
        summed up in one line (a driver's retries: their stack says nothing new)."""
        log = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                text = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    if traceback:  # a failure: its traceback too, or nobody can fix it
                        text += "\n" + logging.Formatter().formatException(record.exc_info)
                    else:
                        exc = record.exc_info[1]
                        text += f": {type(exc).__name__}: {exc}"
                log.emit(event, **{field: text})

        return _Handler()
