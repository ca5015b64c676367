"""docs/log-events.md lists every event the code can write, with the right level."""

from __future__ import annotations

import re
from pathlib import Path

from confserv.logs.events import ALL_EVENTS as CONFSERV_EVENTS
from scs.events import ALL_EVENTS as SCS_EVENTS

ALL_EVENTS = CONFSERV_EVENTS + SCS_EVENTS

DOC = Path(__file__).parents[1] / "docs" / "log-events.md"


def test_every_event_is_documented_with_its_level() -> None:
    rows = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\| (\d{5}) \| (\w{3}) \|", DOC.read_text(), re.MULTILINE)
    }
    for event in ALL_EVENTS:
        assert event.id in rows, f"event {event.id} is missing from docs/log-events.md"
        assert rows[event.id] == event.level.tag, f"event {event.id}: level differs"


def test_ids_are_unique() -> None:
    ids = [e.id for e in ALL_EVENTS]
    assert len(ids) == len(set(ids))
