"""The options the pair must keep equal, compared with the peer's at run time (alarm 20173)."""

from __future__ import annotations

from typing import Any

from confserv.config.options import options_diff
from confserv.core.runtime import Runtime
from confserv.logs import events


def check_options(rt: Runtime, other: str, theirs: Any) -> None:
    """Compare the pair's shared options with ``other``'s: alarm 20173 when they differ."""
    if rt.options is None:
        return
    diff = options_diff(rt.options, theirs)
    if diff is None:
        rt.clear_alarm(events.OPTIONS_DIFFER.id)
    elif rt.raise_alarm(events.OPTIONS_DIFFER.id, f"options differ from {other}'s: {diff}"):
        rt.log.emit(events.OPTIONS_DIFFER, other=other, diff=diff)
