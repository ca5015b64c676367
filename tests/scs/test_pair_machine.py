"""A pair's transition table is closed, and the machine refuses anything outside it.

The table (:data:`scs.pair_machine.TRANSITIONS`) reaches every state from the
initial one, uses every event, and leads nowhere outside the enum; the
machine makes exactly the table's transitions and raises
:class:`IllegalTransition` (staying put) for any other. Then the real core is
driven, through observations only, into every one of the states.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scs.core import SupervisorCore
from scs.observations import (
    DemoteDone,
    LinkLost,
    OperatorPause,
    OperatorResume,
    OperatorSwitchover,
    ProcessExited,
    Tick,
)
from scs.pair_machine import (
    FAILOVER_STATES,
    INITIAL,
    PAUSED_STATES,
    SWITCHOVER_STATES,
    TRANSITIONS,
    IllegalTransition,
    PairEvent,
    PairMachine,
    PairState,
    reachable,
)

from .test_core import WAIT, core_with_primary


def test_every_state_is_reachable_and_every_event_used() -> None:
    assert reachable(INITIAL) == set(PairState)
    assert {event for _state, event in TRANSITIONS} == set(PairEvent)
    assert set(TRANSITIONS.values()) <= set(PairState)
    for state in PairState:  # no dead end: every state can get back to nothing under way
        assert PairState.IDLE in reachable(state)


def test_a_transition_outside_the_table_is_refused() -> None:
    machine = PairMachine("a")
    with pytest.raises(IllegalTransition, match="no transition from idle on promoted"):
        machine.fire(PairEvent.PROMOTED)
    assert machine.state is PairState.IDLE
    machine.fire(PairEvent.PAUSE)
    with pytest.raises(IllegalTransition):
        machine.fire(PairEvent.DEATH)  # a paused pair takes no automatic action
    assert machine.state is PairState.PAUSED


@given(st.lists(st.sampled_from(list(PairEvent)), max_size=60))
@settings(max_examples=300)
def test_the_machine_makes_exactly_the_tables_transitions(events: list[PairEvent]) -> None:
    machine = PairMachine("a")
    for event in events:
        before = machine.state
        expected = TRANSITIONS.get((before, event))
        assert machine.can(event) == (expected is not None)
        if expected is None:
            with pytest.raises(IllegalTransition) as caught:
                machine.fire(event)
            assert (caught.value.state, caught.value.event) == (before, event)
            assert machine.state is before
        else:
            assert machine.fire(event) is expected
        assert machine.paused == (machine.state in PAUSED_STATES)
        assert machine.failing_over == (machine.state in FAILOVER_STATES)
        assert machine.switching == (machine.state in SWITCHOVER_STATES)


def _reach(core: SupervisorCore, target: PairState) -> None:
    """Drive ``core`` (a primary, b backup) into ``target`` by observations alone."""
    pair = core.pairs["a"]
    if target in (PairState.FAILOVER_WAITING, PairState.FAILOVER_PROMOTING):
        core.step(LinkLost("a", "ADDP timeout"), 10.0)
        if target is PairState.FAILOVER_PROMOTING:
            core.step(Tick(), 10.0 + WAIT)
    elif target is PairState.SWITCHOVER_PROMOTING or target is PairState.PAUSED_PROMOTING:
        _reach(core, PairState.SWITCHOVER_DEMOTING)
        core.step(DemoteDone("a", True), 1.1)
        if target is PairState.PAUSED_PROMOTING:
            core.step(OperatorPause("a", "op"), 1.2)
    elif target is PairState.SWITCHOVER_DEMOTING:
        core.step(OperatorSwitchover("a", "op"), 1.0)
    elif target is PairState.PAUSED:
        core.step(OperatorPause("a", "op"), 1.0)
    elif target is PairState.PAUSED_DEMOTING:
        core.step(OperatorPause("a", "op"), 1.0)
        core.step(OperatorSwitchover("a", "op"), 1.1)
    assert pair.state is target
    assert (pair.failover is not None) == (target in FAILOVER_STATES)


@pytest.mark.parametrize("target", list(PairState))
def test_the_core_reaches_every_state_through_observations(
    tmp_path: Path, target: PairState
) -> None:
    _reach(core_with_primary(tmp_path), target)


def test_a_death_in_a_switchover_ends_it_and_fails_over(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)
    core.step(OperatorSwitchover("a", "op"), 1.0)
    out = core.step(ProcessExited("a", 100, "killed by SIGKILL"), 1.1)
    assert core.pairs["a"].state is PairState.FAILOVER_PROMOTING
    assert core.switchover_result("a").startswith("failed: 'a' died")
    assert not core.switchover_under_way("a")
    assert [e.event.id for e in out if hasattr(e, "event")][:3] == [40102, 40301, 40402]
    core.step(OperatorResume("a", "op"), 1.2)  # resuming a pair that is not paused: no-op
    assert core.pairs["a"].state is PairState.FAILOVER_PROMOTING


def test_a_core_never_fires_outside_the_table(tmp_path: Path) -> None:
    """Random observations to the real core: a transition outside the table would raise."""
    rng = random.Random(7)
    for _ in range(20):
        core = core_with_primary(tmp_path)
        now = 1.0
        for _ in range(40):
            now += rng.uniform(0, 3)
            choice = rng.randrange(5)
            if choice == 0:
                core.step(LinkLost(rng.choice("ab"), "ADDP timeout"), now)
            elif choice == 1:
                core.step(OperatorPause("a", "op"), now)
            elif choice == 2:
                core.step(OperatorResume("a", "op"), now)
            elif choice == 3:
                core.step(OperatorSwitchover("a", "op"), now)
            else:
                core.step(Tick(), now)
            pair = core.pairs["a"]
            assert (pair.failover is not None) == (pair.state in FAILOVER_STATES)
