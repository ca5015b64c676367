"""What the fuzz runs (``tests/fuzz``) found, each as a minimal regression test (issue 12).

A test here that still fails on today's code is marked ``xfail(strict=True)``
with the fix it waits for: it documents the finding in ``make test`` without
breaking it, and turns into a failure (drop the marker) the day the fix lands.
"""

from __future__ import annotations

import io

import pytest

from confserv.logs import events
from confserv.logs.eventlog import EventLog


def test_alarms_from_one_source_on_many_connections_are_folded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fuzz's fresh connections each wrote one 20121 (and, on the control port, one
    40501) alarm line: about 350 lines a second per port from one client, never folded,
    because every connection comes from a new source port."""
    clock = [1000.0]
    monkeypatch.setattr("confserv.logs.eventlog.time.time", lambda: clock[0])
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    for i in range(1000):
        clock[0] = 1000.0 + i * 0.001  # 1,000 connections in one second, one alarm each
        log.emit(
            events.MGMT_AUTH_FAILED, peer=f"127.0.0.9:{20000 + i}", reason="command before auth"
        )
    assert len(out.getvalue().splitlines()) <= 2
