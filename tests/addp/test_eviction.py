"""The admission rule of a port with a cap of unauthenticated connections, as properties.

The count never passes the cap; a connection having its credentials checked is
never closed; the one closed for a newcomer is the oldest of its source address,
and its source holds at least as many places as any other; it goes before it has
waited EVICT_MIN_AGE only when its source holds two places more than the
newcomer's, and then the newcomer always finds a place (a crowd from one host
cannot keep out another's peers)."""

from __future__ import annotations

import trio
from hypothesis import example, given
from hypothesis import strategies as st

from addp.transport.admission import EVICT_MIN_AGE, Admission, Waiting, source_of

CAP = 4
#: Arrivals weigh most, so that the cap is reached often.
KINDS = ["arrive"] * 5 + ["authenticate", "end", "busy", "busy", "idle"]
SOURCES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 9),
        st.sampled_from([0.0, 0.3, 1.0]),
        st.sampled_from(SOURCES),
    ),
    max_size=80,
)
#: A crowd of one address filling the cap, then a peer from another: it gets in at once.
CROWD_THEN_PEER = [("arrive", 0, 0.0, "10.0.0.1")] * CAP + [("arrive", 0, 0.0, "10.0.0.2")]


def held(waiting: list[Waiting], source: str) -> int:
    """The model's count of ``source``'s places."""
    return sum(1 for w in waiting if w.source == source)


@given(steps)
@example(CROWD_THEN_PEER)
def test_admission_keeps_the_cap_and_is_fair_between_sources(
    script: list[tuple[str, int, float, str]],
) -> None:
    counts = Admission()
    waiting: list[Waiting] = []  # ours, oldest first (the model)
    now = 0.0
    for n, (step, pick, later, source) in enumerate(script):
        now += later
        if step == "arrive":
            if counts.refusal(None, CAP, True) is not None:
                mine = held(waiting, source)
                idle = [w for w in waiting if not w.busy]
                crowded = any(held(waiting, w.source) >= mine + 2 for w in idle)
                victim = counts.make_room(source, now)
                if crowded:
                    assert victim is not None  # a heavier source always gives way
                if victim is None:
                    # Refused: nobody idle, or the oldest of every heaviest source is young.
                    most = max((held(waiting, w.source) for w in idle), default=0)
                    assert all(
                        now - w.since < EVICT_MIN_AGE
                        for w in idle
                        if held(waiting, w.source) == most
                    )
                    continue
                assert not victim.busy
                assert victim in waiting
                assert all(held(waiting, victim.source) >= held(waiting, w.source) for w in idle)
                assert victim is next(w for w in idle if w.source == victim.source)
                if now - victim.since < EVICT_MIN_AGE:
                    assert held(waiting, victim.source) >= mine + 2
                waiting.remove(victim)
                assert counts.refusal(None, CAP, True) is None  # its place is free now
            new = Waiting(f"{source}:{40000 + n}", trio.CancelScope(), now)
            counts.wait(new)
            waiting.append(new)
        elif waiting:
            chosen = waiting[pick % len(waiting)]
            if step in ("authenticate", "end"):
                counts.done_waiting(chosen)
                counts.done_waiting(chosen)  # told twice (it ended after it authenticated)
                waiting.remove(chosen)
            else:
                chosen.busy = step == "busy"
        assert counts.unauthenticated == len(waiting) <= CAP
        for one in SOURCES:
            assert counts.held(one) == held(waiting, one)


def test_the_source_of_a_peer_is_its_host() -> None:
    assert source_of("127.0.0.2:40123") == "127.0.0.2"
    assert source_of("::1:40123") == "::1"
    assert source_of("?") == "?"
