"""What an event is: its stable id, level and message template, with no I/O.

The pure cores (the supervisor's decisions) return these; :mod:`.eventlog` writes them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.IntEnum):
    """Severity of an event; the lowest written is set by ``[log] verbose``."""

    DBG = 10
    TRC = 20
    INT = 30
    STD = 40
    ALR = 50

    @property
    def tag(self) -> str:
        """The three-letter tag written in the line."""
        return self.name.capitalize()


#: ``[log] verbose`` values and the lowest level each writes (None: nothing).
VERBOSITY: dict[str, Level | None] = {
    "all": Level.DBG,
    "debug": Level.DBG,
    "trace": Level.TRC,
    "interaction": Level.INT,
    "standard": Level.STD,
    "none": None,
}


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One kind of event: its stable id, level and message template (``str.format``)."""

    id: int
    level: Level
    template: str
