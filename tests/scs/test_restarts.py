"""The restart policy on its own (pure; hypothesis): back-off with jitter, the intensity
limit, slow retries and never a silent give-up, an operator's stop never restarted."""

from __future__ import annotations

import random

import pytest
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


def test_only_failed_starts_count_towards_the_crash_loop_limit() -> None:
    """make chaos (PostgreSQL, seed 738611): both servers of a pair, killed from outside
    five times in a minute, each time back and serving within a second, were held down
    30 s as a crash loop. A server that served for restart-min-uptime was started
    successfully; one that dies before (or while still starting) is a failed start."""
    rng = random.Random(3)
    served = Restarts("a", POLICY)
    now = 0.0
    for _ in range(10):  # killed 5 s after each start, serving from 1 s after it
        assert 40104 not in ids(served.schedule(now, rng, paused=False))
        assert served.next_start is not None
        assert served.next_start - now <= POLICY.backoff * 1.2 + 1e-9
        now = served.next_start
        served.restarted(now)
        served.seen_up()
        served.serving(now + 1.0)
        now += 5.0
    failing = Restarts("b", POLICY)
    now, alarms = 0.0, []
    for _ in range(7):  # serves for 1 s only (below restart-min-uptime), then dies
        alarms += ids(failing.schedule(now, rng, paused=False))
        assert failing.next_start is not None
        now = failing.next_start
        failing.restarted(now)
        failing.serving(now + 0.5)
        now += 1.5
    assert 40104 in alarms


@given(
    lives=st.lists(
        st.tuples(st.floats(0.0, 10.0), st.none() | st.floats(0.0, 10.0)), min_size=1, max_size=30
    ),
    seed=st.integers(0, 1000),
)
@settings(max_examples=200)
def test_the_limit_counts_the_failed_starts_since_the_last_successful_one(
    lives: list[tuple[float, float | None]], seed: int
) -> None:
    """Each life: it dies ``life`` seconds after its start, having served from ``serving``
    seconds after it (None: never). The restarts counted are those in the window since
    the last successful start; with ``limit`` of them the restart is slow (backoff-max)."""
    policy = RestartPolicy(backoff=0.1, backoff_max=30.0, limit=3, window=60.0, min_uptime=2.0)
    r, rng = Restarts("a", policy), random.Random(seed)
    now, counted = 0.0, []
    for life, serving in lives:
        r.schedule(now, rng, paused=False)
        assert r.next_start is not None
        counted = [t for t in counted if t > now - policy.window]
        assert list(r.history) == counted
        if len(counted) >= policy.limit:
            assert r.next_start - now == pytest.approx(policy.backoff_max)
        now = r.next_start
        r.restarted(now)
        counted.append(now)
        if serving is not None and serving <= life:
            r.serving(now + serving)
            # the uptime as the code computes it, from the two instants (floats)
            if (now + life) - (now + serving) >= policy.min_uptime:
                counted = []  # a successful start: the count starts again
        now += life
