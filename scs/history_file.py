"""The failover history on disk: ``<state-dir>/failovers.jsonl``, read by ``scs history``.

One JSON object per line (:meth:`FailoverRecord.to_json`), appended as each
story ends (:class:`~scs.history.FailoverStories`, fed by the event log's
observers), so that a supervisor killed at once loses at most the story
still open. Past ``[scs] history-max`` records the oldest are dropped (the
file is rewritten beside itself and renamed over: never half a file). A line
that cannot be read (cut by a crash) is skipped by the reader.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confserv.logs.catalog import LogEvent

from .history import FailoverRecord, FailoverStories

#: The history's file name in ``[scs] state-dir``.
HISTORY_NAME = "failovers.jsonl"


class HistoryFile:
    """Appends every ended story to ``path``, keeping the last ``max_records``."""

    def __init__(self, path: Path, max_records: int) -> None:
        self.path = path
        self.max_records = max_records
        self.stories = FailoverStories()
        self._count: int | None = None
        #: The last error writing the file (None: none); the supervisor goes on.
        self.error: OSError | None = None

    def observe(self, event: LogEvent, fields: Mapping[str, Any]) -> None:
        """An :attr:`EventLog.observers` callback: feed the stories, write what ended."""
        for record in self.stories.feed(event.id, fields, time.time()):
            self.write(record)

    def write(self, record: FailoverRecord) -> None:
        """Append ``record`` (and trim the file past ``max_records``); never raises."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
            if self._count is None:
                self._count = len(_lines(self.path))
            else:
                self._count += 1
            if self._count > self.max_records:
                self._trim()
            self.error = None
        except OSError as exc:
            self.error = exc

    def _trim(self) -> None:
        keep = _lines(self.path)[-self.max_records :]
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_text("".join(keep), encoding="utf-8")
        os.replace(temporary, self.path)
        self._count = len(keep)


def read_history(path: Path) -> list[FailoverRecord]:
    """Every record of ``path``, oldest first (none when it does not exist). Raises
    :class:`OSError` when it exists and cannot be read."""
    try:
        lines = _lines(path)
    except FileNotFoundError:
        return []
    out: list[FailoverRecord] = []
    for line in lines:
        try:
            data = json.loads(line)
            if isinstance(data, dict):
                out.append(FailoverRecord.from_json(data))
        except (ValueError, TypeError):
            continue  # a line cut by a crash
    return out


def _lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        return [line for line in f if line.endswith("\n")]
