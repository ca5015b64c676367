"""The pure login back-off (confserv/core/auth_backoff.py) on a simulated clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserv.core.auth_backoff import Backoff, BackoffPolicy, Blocked, Forgotten

POLICY = BackoffPolicy(threshold=5, window=60.0, base_delay=1.0, max_delay=60.0, quiet=600.0)

ops = st.lists(
    st.tuples(
        st.sampled_from(["try", "try", "try", "ok", "tick"]),
        st.sampled_from(["a", "b", "c"]),
        st.floats(min_value=0.0, max_value=120.0),
    ),
    max_size=200,
)


@given(ops)
def test_a_guesser_gets_few_checks_and_each_episode_logs_twice_at_most(
    steps: list[tuple[str, str, float]],
) -> None:
    """An attacker who tries whenever allowed (each try fails) is checked at most
    ``threshold`` times before a block, then at most once per delay, the delay
    doubling to the cap; a refused try never extends the block; each blocking
    episode logs one Blocked and, when forgotten, one Forgotten."""
    b = Backoff(POLICY)
    now = 0.0
    checked: dict[str, list[float]] = {}
    open_episodes: set[str] = set()
    for op, key, dt in steps:
        now += dt
        if op == "try":
            wait = b.wait(key, now)
            assert 0.0 <= wait <= POLICY.max_delay
            if wait > 0:
                assert b.blocked(key, now)
                continue
            events = b.failed(key, now)
            checked.setdefault(key, []).append(now)
        elif op == "ok":
            b.succeeded(key)
            open_episodes.discard(key)
            checked.pop(key, None)
            events = []
        else:
            events = b.tick(now)
        for e in events:
            if isinstance(e, Blocked):
                assert e.key not in open_episodes
                assert e.failures == POLICY.threshold
                open_episodes.add(e.key)
            else:
                assert isinstance(e, Forgotten)
                assert e.key in open_episodes
                open_episodes.discard(e.key)
                checked.pop(e.key, None)
        for k, times in checked.items():
            # of any threshold+1 consecutive checked failures, the last came at least
            # base_delay after the one before it (the block in between)
            for i in range(POLICY.threshold, len(times)):
                if times[i] - times[i - POLICY.threshold] <= POLICY.window:
                    assert times[i] - times[i - 1] >= POLICY.base_delay, (k, times)
    assert len(b) <= 3


@given(st.integers(min_value=1, max_value=400), st.floats(min_value=0.001, max_value=2.0))
def test_the_delay_doubles_to_the_cap(tries: int, gap: float) -> None:
    """Tries every ``gap`` seconds: the waits a guesser sees double up to max_delay,
    and the checked failures over the run are bounded by the doubling."""
    b = Backoff(POLICY)
    now, checked, delays = 0.0, 0, []
    for _ in range(tries):
        wait = b.wait("k", now)
        if wait == 0:
            b.failed("k", now)
            checked += 1
            if b.blocked("k", now):
                delays.append(b.wait("k", now))
        now += gap
    expected = [min(POLICY.max_delay, POLICY.base_delay * 2**i) for i in range(len(delays))]
    assert delays == pytest.approx(expected)
    # 5 free, then one per delay: 1, 2, 4, 8, 16, 32, then one per minute
    bound = POLICY.threshold + 7 + int(now / POLICY.max_delay)
    assert checked <= bound


@given(st.integers(min_value=0, max_value=POLICY.threshold - 1), st.floats(0.0, 30.0))
def test_a_few_typos_never_block(failures: int, gap: float) -> None:
    b = Backoff(POLICY)
    now = 0.0
    for _ in range(failures):
        assert b.wait("u", now) == 0
        assert b.failed("u", now) == []
        now += gap
    assert not b.blocked("u", now)
    b.succeeded("u")
    assert len(b) == 0


@given(st.integers(min_value=POLICY.threshold, max_value=50))
def test_a_quiet_key_is_forgotten_with_its_counts(failures: int) -> None:
    b = Backoff(POLICY)
    now = 0.0
    for _ in range(failures):
        if b.wait("s", now) == 0:
            b.failed("s", now)
        now += 0.5
    assert b.tick(now) == []
    deadline = b.next_deadline()
    assert deadline is not None
    assert b.tick(deadline - 0.001) == []
    [gone] = b.tick(deadline)
    assert isinstance(gone, Forgotten)
    assert gone.key == "s"
    assert gone.failures + gone.refused == failures
    assert b.next_deadline() is None
    assert b.wait("s", deadline) == 0


def test_invented_names_cannot_grow_it_without_bound() -> None:
    b = Backoff(BackoffPolicy(max_keys=100))
    for i in range(10_000):
        b.failed(f"user {i}", float(i))
    assert len(b) == 100
