"""The failover history: stories told from the supervisor's events, kept on disk.

:class:`FailoverStories` is pure: fed event ids, fields and times. The
properties state its invariants for any sequence of events: at most one open
story per pair, every story ended once (at the latest at the supervisor's
stop), a story's times never going backwards. :class:`HistoryFile` keeps the
last ``history-max`` records, and its reader skips a line cut by a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scs import events
from scs.history import CAUSES, ENDS, STARTS, FailoverRecord, FailoverStories
from scs.history_file import HistoryFile, read_history

#: One kill of the primary as the supervisor logs it (event id, fields).
KILL_STORY: list[tuple[int, dict[str, Any]]] = [
    (40301, {"pair": "p", "server": "cs1", "how": "killed by SIGKILL"}),
    (40304, {"pair": "p", "server": "cs2"}),
    (40306, {"pair": "p", "server": "cs2", "epoch": 3, "ms": 12.5}),
    (40308, {"proxy": "px", "server": "cs2", "where": "127.0.0.1:1"}),
    (40101, {"server": "cs1", "pid": 42, "why": " as backup"}),
    (40309, {"pair": "p", "primary": "cs2", "backup": "cs1"}),
]


def tell(stories: FailoverStories, story: list[tuple[int, dict[str, Any]]], t0: float = 100.0):
    ended: list[FailoverRecord] = []
    for n, (event_id, fields) in enumerate(story):
        ended += stories.feed(event_id, fields, t0 + n)
    return ended


def test_a_kill_is_one_record_with_every_step() -> None:
    [record] = tell(FailoverStories(), KILL_STORY)
    assert record.to_json() == {
        "pair": "p",
        "old_primary": "cs1",
        "seen": "died",
        "detail": "killed by SIGKILL",
        "fault_at": 100.0,
        "cause": "proof of death",
        "decided_at": 101.0,
        "new_primary": "cs2",
        "epoch": 3,
        "promote_ms": 12.5,
        "promoted_at": 102.0,
        "proxies_redirected": 1,
        "old_primary_back_at": 104.0,
        "healthy_at": 105.0,
        "outcome": "healthy",
        "events": [40301, 40304, 40306, 40308, 40101, 40309],
    }


def test_a_silence_that_ends_within_the_wait_is_a_cancelled_record() -> None:
    story = [
        (40302, {"pair": "p", "server": "cs1", "reason": "ADDP timeout", "wait": 2.0}),
        (40303, {"pair": "p", "server": "cs1"}),
    ]
    [record] = tell(FailoverStories(), story)
    assert (record.seen, record.detail, record.cause) == ("silent", "ADDP timeout", None)
    assert record.outcome == "cancelled: the primary came back within the wait"


def test_a_stop_ends_what_is_open_and_the_next_fault_cuts_the_last() -> None:
    stories = FailoverStories()
    first = tell(stories, KILL_STORY[:2])
    assert first == []
    [cut] = stories.feed(40302, {"pair": "p", "server": "cs2", "reason": "x"}, 200.0)
    assert cut.outcome == "cut by the next fault"
    assert cut.old_primary == "cs1"
    [open_one] = stories.feed(events.STOPPING.id, {"reason": "SIGTERM"}, 201.0)
    assert open_one.outcome == "open when the supervisor stopped"
    assert stories.open == {}


def test_a_switchover_is_its_own_cause() -> None:
    story = [
        (40401, {"pair": "p", "who": "operator", "primary": "cs1", "backup": "cs2"}),
        (40306, {"pair": "p", "server": "cs2", "epoch": 4, "ms": 30.0}),
        (40309, {"pair": "p", "primary": "cs2", "backup": "cs1"}),
    ]
    [record] = tell(FailoverStories(), story)
    assert (record.seen, record.cause, record.old_primary, record.new_primary) == (
        "switchover",
        "switchover",
        "cs1",
        "cs2",
    )


_IDS = sorted({*STARTS, *CAUSES, *ENDS, 40306, 40308, 40101, 40309, 40002, 40316, 40102})
_EVENT = st.tuples(
    st.sampled_from(_IDS),
    st.fixed_dictionaries(
        {
            "pair": st.sampled_from(["p", "q", None]),
            "server": st.sampled_from(["cs1", "cs2", "cs3"]),
            "epoch": st.one_of(st.integers(1, 9), st.none(), st.text(max_size=2)),
            "ms": st.one_of(st.floats(0, 1e4), st.none()),
        }
    ),
    st.floats(-5.0, 5.0),  # the clock may step back: times must not follow it
)


_NO_FIELDS: dict[str, Any] = {"pair": "q", "server": "cs1", "epoch": None, "ms": None}


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT, max_size=40))
# found by hypothesis (a local, non-derandomized run): the decision told a second after
# the promotion it led to was stamped after it
@example(
    [
        (40301, _NO_FIELDS, -2.56),
        (40306, {**_NO_FIELDS, "server": "cs2", "epoch": 1}, 0.0),
        (40304, _NO_FIELDS, 1.0),
    ]
)
# and healthy again, without a promotion, before a decision told late
@example(
    [
        (40301, {**_NO_FIELDS, "pair": "p"}, 0.0),
        (40304, {**_NO_FIELDS, "pair": "p"}, 1.0),
        (40101, {**_NO_FIELDS, "pair": "p"}, -1.0),
        (40309, {**_NO_FIELDS, "pair": "p"}, 0.0),
    ]
)
def test_any_sequence_keeps_the_invariants(sequence: list[tuple[int, dict[str, Any], float]]):
    stories = FailoverStories()
    now, started, ended = 1000.0, 0, []
    for event_id, fields, step in sequence:
        now += step
        fields = {k: v for k, v in fields.items() if v is not None}
        before = dict(stories.open)
        out = stories.feed(event_id, fields, now)
        ended += out
        starts = event_id in STARTS and isinstance(fields.get("pair"), str)
        starts = starts and not (event_id == 40313 and fields["pair"] in before)
        started += starts
        assert len(stories.open) <= 2  # one per pair, two pairs
        for story in stories.open.values():
            assert story.outcome == "open"
    ended += stories.close_all("open when the supervisor stopped")
    assert len(ended) == started  # every story told exactly once
    for record in ended:
        times = [
            t
            for t in (record.fault_at, record.decided_at, record.promoted_at, record.healthy_at)
            if t is not None
        ]
        assert times == sorted(times), record
        assert record.outcome != "open"
        assert json.loads(json.dumps(record.to_json())) == record.to_json()


def test_the_file_keeps_the_last_records_and_skips_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "failovers.jsonl"
    history = HistoryFile(path, max_records=3)
    for n in range(5):
        history.write(FailoverRecord(f"p{n}", "cs1", "died", "SIGKILL", float(n)))
    assert [r.pair for r in read_history(path)] == ["p2", "p3", "p4"]
    with path.open("a") as out:
        out.write('{"pair": "cut')  # a crash in the middle of a line
    assert [r.pair for r in read_history(path)] == ["p2", "p3", "p4"]
    assert read_history(tmp_path / "none.jsonl") == []


def test_a_file_that_cannot_be_written_does_not_stop_the_supervisor(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    history = HistoryFile(blocker / "failovers.jsonl", max_records=3)
    history.write(FailoverRecord("p", "cs1", "died", "SIGKILL", 1.0))
    assert isinstance(history.error, OSError)
