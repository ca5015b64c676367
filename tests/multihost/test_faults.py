"""Fault schedules: properties of the pure generator, and apply/undo on a real bed."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.multihost.faults import (
    ALL_KINDS,
    Fault,
    FaultKind,
    FaultSchedule,
    apply,
    generate,
    timeline,
    undo,
)
from tests.multihost.netns import TestBed

ROLES = {
    "A": ["confserv-A", "lca-A"],
    "B": ["confserv-B", "lca-B"],
    "C": ["scs", "lca-C"],
    "D": ["postgres-D"],
    "E": ["postgres-E"],
}


@st.composite
def roles(draw: st.DrawFn) -> dict[str, list[str]]:
    """One to six hosts with zero to three named processes each."""
    hosts = draw(st.lists(st.sampled_from("ABCDEF"), min_size=1, max_size=6, unique=True))
    return {h: [f"p{i}-{h}" for i in range(draw(st.integers(0, 3)))] for h in hosts}


def check_schedule(
    schedule: FaultSchedule,
    roles: Mapping[str, Sequence[str]],
    kinds: Sequence[FaultKind],
    max_concurrent: int,
    duration: tuple[float, float] = (0.3, 3.0),
) -> None:
    """Every fault is sound, healed, within the horizon; replaying the timeline heals all."""
    owner = {name: host for host, names in roles.items() for name in names}
    for fault in schedule.faults:
        assert fault.kind in kinds
        assert 0 < fault.at < fault.ends <= schedule.horizon
        assert duration[0] <= fault.duration <= duration[1]
        if fault.kind.startswith("partition"):
            a, b = fault.args
            assert a != b
            assert {a, b} <= set(roles)
            assert fault.hosts == {a, b}
        elif fault.kind in ("link_down", "crash"):
            assert fault.args[0] in roles
            assert fault.hosts == {fault.args[0]}
        else:
            assert fault.hosts == {owner[fault.args[0]]}
    assert [f.at for f in schedule.faults] == sorted(f.at for f in schedule.faults)
    broken: dict[Fault, float] = {}
    last = 0.0
    for at, step, fault in timeline(schedule):
        assert at >= last
        last = at
        if step == "apply":
            assert fault not in broken
            assert not any(fault.hosts & other.hosts for other in broken)  # no overlap on a host
            broken[fault] = at
            assert len(broken) <= max_concurrent
        else:
            assert broken.pop(fault) + fault.duration == at
    assert broken == {}  # everything broken was healed
    assert last <= schedule.horizon


@given(
    seed=st.integers(0, 2**32),
    roles=roles(),
    horizon=st.floats(0.5, 60.0),
    kinds=st.lists(st.sampled_from(ALL_KINDS), min_size=1, unique=True),
    max_concurrent=st.integers(1, 3),
)
def test_every_schedule_heals_what_it_breaks_within_its_bound(
    seed: int,
    roles: dict[str, list[str]],
    horizon: float,
    kinds: list[FaultKind],
    max_concurrent: int,
) -> None:
    """Property: sound faults, no overlap on a host, all healed by the horizon; same seed, same."""
    schedule = generate(seed, roles, horizon=horizon, kinds=kinds, max_concurrent=max_concurrent)
    check_schedule(schedule, roles, kinds, max_concurrent)
    assert generate(seed, roles, horizon=horizon, kinds=kinds, max_concurrent=max_concurrent) == (
        schedule
    )


def test_a_long_schedule_draws_every_kind() -> None:
    """Over 60 s on the five-host roles every kind of fault shows up, seeds differ."""
    schedule = generate(1, ROLES, horizon=60.0)
    check_schedule(schedule, ROLES, ALL_KINDS, 2)
    assert {f.kind for f in schedule.faults} == set(ALL_KINDS)
    assert generate(2, ROLES, horizon=60.0).faults != schedule.faults
    assert str(schedule.faults[0]).startswith(f"t={schedule.faults[0].at:.3f} ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0.0}, "positive"),
        ({"duration": (2.0, 1.0)}, "min <= max"),
        ({"max_concurrent": 0}, "at least 1"),
        ({"kinds": ["flood"]}, "unknown fault kinds"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    """Nonsense parameters raise one clear ValueError."""
    with pytest.raises(ValueError, match=message):
        generate(0, ROLES, **kwargs)  # type: ignore[arg-type]


def proc_state(pid: int) -> str:
    """The one-letter state of ``pid``."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def fault(kind: FaultKind, *args: str, hosts: str) -> Fault:
    """A hand-made fault at t=0 for one second."""
    return Fault(0.0, kind, args, 1.0, frozenset(hosts))


@pytest.mark.integration
def test_apply_and_undo_every_kind(bed: TestBed) -> None:
    """Each kind does to the bed what it says, and undo heals it."""
    sleepers = {
        h: bed.spawn(h, ["sleep", "60"], name=f"p-{h}", stdout=subprocess.DEVNULL) for h in "AB"
    }
    apply(bed, f := fault("partition", "A", "B", hosts="AB"))
    assert bed.partitions() == {("A", "B"), ("B", "A")}
    undo(bed, f)
    apply(bed, f := fault("partition_one_way", "C", "D", hosts="CD"))
    assert bed.partitions() == {("C", "D")}
    undo(bed, f)
    assert bed.partitions() == set()

    apply(bed, f := fault("link_down", "E", hosts="E"))
    assert "state DOWN" in bed.run("E", ["ip", "link", "show", "eth0"]).stdout
    undo(bed, f)
    assert "state UP" in bed.run("E", ["ip", "link", "show", "eth0"]).stdout

    apply(bed, f := fault("pause", "p-B", hosts="B"))
    assert proc_state(sleepers["B"].pid) == "T"
    undo(bed, f)
    apply(bed, f := fault("kill", "p-B", hosts="B"))
    assert sleepers["B"].wait(timeout=5) == -signal.SIGKILL
    undo(bed, f)  # nothing to heal; and signalling the dead process again is no error
    apply(bed, fault("pause", "p-B", hosts="B"))

    apply(bed, f := fault("crash", "A", hosts="A"))
    assert sleepers["A"].wait(timeout=5) == -signal.SIGKILL
    assert bed.crashed() == {"A"}
    undo(bed, f)
    assert bed.crashed() == set()
    with pytest.raises(ProcessLookupError, match="not a process of this test bed"):
        bed.kill(sleepers["A"].pid)


@pytest.mark.integration
def test_a_generated_schedule_replayed_on_a_bed_leaves_it_whole(bed: TestBed) -> None:
    """Every step of a 20 s schedule, replayed at once, ends with nothing broken."""
    for host, names in ROLES.items():
        for name in names:
            bed.spawn(host, ["sleep", "60"], name=name)
    schedule = generate(2, ROLES, horizon=20.0)
    assert {f.kind for f in schedule.faults} == set(ALL_KINDS)
    for _, step, f in timeline(schedule):
        (apply if step == "apply" else undo)(bed, f)
    assert bed.partitions() == set()
    assert bed.crashed() == set()
    for host in bed.hosts:
        assert "state UP" in bed.run(host, ["ip", "link", "show", "eth0"]).stdout
        for name in ROLES[host]:
            pid = bed.pid_of(name)
            if bed.host_of(pid) is not None:
                assert proc_state(pid) != "T"  # nothing left stopped
