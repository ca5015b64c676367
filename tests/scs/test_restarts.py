"""The restart policy on its own (pure; hypothesis): back-off with jitter, the intensity
limit, slow retries and never a silent give-up, an operator's stop never restarted."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from scs.config import RestartPolicy
from scs.restarts import Restarts

POLICY = RestartPolicy(backoff=0.5, backoff_max=30.0, limit=5, window=60.0)


def ids(lines: list[object]) -> list[int]:
    return [line.event.id for line in lines]  # type: ignore[attr-defined]


def test_backoff_doubles_with_jitter_up_to_the_max() -> None:
    r = Restarts("a", RestartPolicy(backoff=1.0, backoff_max=8.0, limit=100, window=1000.0))
    rng, now = random.Random(1), 0.0
    for attempt in range(6):
        assert ids(r.schedule(now, rng, paused=False)) == [40103]
        assert r.next_start is not None
        delay = r.next_start - now
        assert min(2**attempt, 8.0) * 0.8 <= delay <= min(2**attempt * 1.2, 8.0)
        now = r.next_start
        assert r.due(now)
        assert not r.due(now)
        r.restarted(now)
    r.seen_up()  # it answered: the back-off starts again
    r.schedule(now, rng, paused=False)
    assert r.next_start is not None
    assert r.next_start - now <= 1.2


def test_an_operator_stop_autorestart_off_and_a_paused_pair() -> None:
    rng = random.Random(2)
    stopped = Restarts("a", POLICY)
    stopped.stop_by_operator()
    assert ids(stopped.schedule(0.0, rng, paused=False)) == [40105]
    assert stopped.next_start is None
    assert ids(stopped.resume(1.0, rng)) == []
    off = Restarts("a", POLICY, autorestart=False)
    assert ids(off.schedule(0.0, rng, paused=False)) == [40105]
    held = Restarts("a", POLICY)
    assert ids(held.schedule(0.0, rng, paused=True)) == [40105]
    assert held.next_start is None
    assert held.held
    assert ids(held.resume(5.0, rng)) == [40103]  # scheduled when the pair is resumed
    assert held.next_start is not None
    assert held.next_start > 5.0


@given(
    limit=st.integers(min_value=1, max_value=6),
    window=st.floats(min_value=1.0, max_value=120.0),
    backoff_max=st.floats(min_value=0.5, max_value=40.0),
    lifetimes=st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=1000),
)
@settings(max_examples=200)
def test_restarts_obey_the_intensity_limit_and_never_give_up(
    limit: int, window: float, backoff_max: float, lifetimes: list[float], seed: int
) -> None:
    """A server that dies after each lifetime: every restart is scheduled (no give-up),
    none later than backoff-max; a restart that finds ``limit`` restarts in the window
    before it comes at least backoff-max after the previous one; one alarm per episode."""
    policy = RestartPolicy(backoff=0.1, backoff_max=backoff_max, limit=limit, window=window)
    r, rng = Restarts("a", policy), random.Random(seed)
    now, starts, alarms, over = 0.0, [], 0, False
    for life in lifetimes:
        lines = r.schedule(now, rng, paused=False)
        alarms += ids(lines).count(40104)
        assert r.next_start is not None, "gave up"
        assert now < r.next_start <= now + backoff_max + 1e-9
        now = r.next_start
        assert r.due(now)
        recent = [t for t in starts if t > now - window]
        if len(recent) >= limit:
            assert now - starts[-1] >= backoff_max - 1e-9, "past the limit, yet not slow"
            over = True
        r.restarted(now)
        starts.append(now)
        now += life
    assert alarms <= len(lifetimes)
    if over:
        assert alarms >= 1
