"""Repeated alarms folded into one line with a count (issue 12).

The audit: commands before ``auth`` on one management connection wrote
20,556 alarm lines per second. The pure :class:`RateLimiter` is checked
against a model under a fake clock; the event log is checked end to end with
its clock replaced.
"""

from __future__ import annotations

import io
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserv.logs import events
from confserv.logs.eventlog import EventLog
from confserv.logs.ratelimit import RateLimiter

INTERVAL = 10.0

steps = st.lists(
    st.tuples(st.sampled_from("abcd"), st.floats(min_value=0, max_value=7, allow_nan=False)),
    max_size=200,
)


@given(steps, st.integers(min_value=1, max_value=6))
def test_every_occurrence_is_written_or_counted_exactly_once(
    sequence: list[tuple[str, float]], max_keys: int
) -> None:
    limiter = RateLimiter(INTERVAL, max_keys=max_keys)
    now = 0.0
    written: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    last_line: dict[str, float] = {}
    for key, dt in sequence:
        now += dt
        for summary in limiter.due(now):
            counted[str(summary.key)] += summary.count
            assert summary.count > 0
            assert 0 <= summary.seconds <= INTERVAL
            assert summary.last == ("note", summary.key)
        if limiter.allow(key, now, ("note", key)):
            written[key] += 1
            # at most one line per key per interval (unless evicted to stay bounded)
            if max_keys > 4 and key in last_line:  # 4 keys: room for all, none evicted
                assert now >= last_line[key] + INTERVAL
            last_line[key] = now
        assert len(limiter) <= max_keys
    for summary in limiter.due(now + INTERVAL):
        counted[str(summary.key)] += summary.count
    assert limiter.due(now + 2 * INTERVAL) == []
    total = Counter(key for key, _ in sequence)
    assert written + counted == total


@given(steps)
def test_the_next_deadline_is_when_a_held_window_ends(sequence: list[tuple[str, float]]) -> None:
    limiter = RateLimiter(INTERVAL)
    now = 0.0
    for key, dt in sequence:
        now += dt
        limiter.due(now)
        limiter.allow(key, now)
        deadline = limiter.next_deadline()
        if deadline is not None:
            assert now < deadline <= now + INTERVAL
            assert limiter.due(deadline - 1e-6) == []
            assert limiter.due(deadline) != []
            limiter = RateLimiter(INTERVAL)  # start over: due() consumed the window


def test_a_first_line_is_written_at_once_then_one_summary_per_interval() -> None:
    limiter = RateLimiter(INTERVAL)
    assert limiter.allow("k", 0.0)
    assert not any(limiter.allow("k", 0.0004 * i) for i in range(1, 20_557))
    assert limiter.due(9.9) == []
    (summary,) = limiter.due(10.0)
    assert (summary.key, summary.count, summary.seconds) == ("k", 20_556, 10.0)
    assert limiter.allow("k", 10.5)


def test_the_event_log_folds_20556_alarms_from_one_peer_into_two_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("confserv.logs.eventlog.time.time", lambda: clock[0])
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    for i in range(20_556):
        clock[0] = 1000.0 + i * 0.00005  # 20,556 in about one second
        log.emit(events.MGMT_AUTH_FAILED, peer="127.0.0.1:5000", reason="command before auth")
    assert len(out.getvalue().splitlines()) == 1
    log.emit(events.MGMT_AUTH_FAILED, peer="127.0.0.2:5001", reason="another source")
    assert len(out.getvalue().splitlines()) == 2
    clock[0] = 1011.0
    log.flush_summaries()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[2].endswith("(20555 more in the last 10 s)")
    assert " Alr 20121 Management client 127.0.0.1:5000" in lines[2]
    assert log.lines_held == 20_555


def test_ordinary_events_are_not_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("confserv.logs.eventlog.time.time", lambda: 5.0)
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    for serial in range(100):
        log.emit(
            events.OBJECT_CHANGED,
            serial=serial,
            epoch=1,
            op="add",
            type="Host",
            dbid=serial,
            name="h",
            by="t",
        )
    assert len(out.getvalue().splitlines()) == 100


def test_alarms_of_the_servers_own_making_are_all_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("confserv.logs.eventlog.time.time", lambda: 5.0)
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    for _ in range(3):  # e.g. two failovers with the same text within 10 s
        log.emit(events.LEASE_LOST, epoch=3, reason="renewal failed")
    assert len(out.getvalue().splitlines()) == 3


async def test_the_server_writes_a_summary_without_waiting_for_the_next_line(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trio

    from confserv.server.ports import flush_log_summaries

    clock = [100.0]
    monkeypatch.setattr("confserv.logs.eventlog.time.time", lambda: clock[0])
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flush_log_summaries, log)
        for _ in range(5):
            log.emit(events.MGMT_AUTH_FAILED, peer="127.0.0.1:9", reason="before auth")
        await trio.sleep(5)
        assert len(out.getvalue().splitlines()) == 1
        clock[0] = 110.5
        await trio.sleep(5.1)  # the flusher wakes at 10 s
        lines = out.getvalue().splitlines()
        assert len(lines) == 2
        assert lines[1].endswith("(4 more in the last 10 s)")
        nursery.cancel_scope.cancel()
