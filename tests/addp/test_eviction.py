"""The admission rule of a port with a cap of unauthenticated connections, as a property:
the count never passes the cap; the one closed for a newcomer is the oldest one not
having its credentials checked, and only once it has waited EVICT_MIN_AGE; a connection
being checked is never closed."""

from __future__ import annotations

import trio
from hypothesis import given
from hypothesis import strategies as st

from addp.transport.net import EVICT_MIN_AGE, _Counts, _Waiting

CAP = 4
#: Arrivals weigh most, so that the cap is reached often.
KINDS = ["arrive"] * 5 + ["authenticate", "end", "busy", "busy", "idle"]
steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 9), st.sampled_from([0.0, 0.3, 1.0])),
    max_size=80,
)


@given(steps)
def test_admission_keeps_the_cap_and_evicts_the_oldest_idle(
    script: list[tuple[str, int, float]],
) -> None:
    counts = _Counts()
    waiting: list[_Waiting] = []  # ours, oldest first (the model)
    now = 0.0
    for n, (step, pick, later) in enumerate(script):
        now += later
        if step == "arrive":
            full = counts.refusal(None, CAP, True)
            if full is None:
                new = _Waiting(f"c{n}", trio.CancelScope(), now)
                counts.wait(new)
                waiting.append(new)
                continue
            idle = [w for w in waiting if not w.busy]
            victim = counts.evict_oldest(now)
            if not idle or now - idle[0].since < EVICT_MIN_AGE:
                assert victim is None  # none may go: the newcomer is refused
                continue
            assert victim is idle[0]
            waiting.remove(victim)
            assert counts.refusal(None, CAP, True) is None  # its place is free now
            new = _Waiting(f"c{n}", trio.CancelScope(), now)
            counts.wait(new)
            waiting.append(new)
        elif waiting:
            chosen = waiting[pick % len(waiting)]
            if step in ("authenticate", "end"):
                counts.done_waiting(chosen)
                waiting.remove(chosen)
            else:
                chosen.busy = step == "busy"
        assert counts.unauthenticated == len(waiting) <= CAP
