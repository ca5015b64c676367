"""The seeded simulation: a fixed slice of schedules holds every invariant, a seed replays
exactly, and the simulation catches the bugs it is meant to (mutation checks).

``make test`` runs this slice; ``make chaos`` runs 10,000 schedules
(:mod:`tests.chaos.__main__`). A failure names its replay line,
``python -m tests.sim --seed N``.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import confserv.store.base as store_base
from confserv.client.session import ManagementClient
from confserv.core.service import ConfigService

from .run import replay_line, run_schedule
from .schedule import Planned, plan
from .system import PROXY

#: The slice ``make test`` runs (about 15 s niced on this machine).
SLICE = range(1, 81)


def test_a_slice_of_seeded_schedules_holds_every_invariant() -> None:
    failovers = failsafe = 0
    kinds: set[str] = set()
    for seed in SLICE:
        outcome = run_schedule(seed)
        assert outcome.violations == [], f"seed {seed} ({replay_line(seed)}):\n" + "\n".join(
            outcome.violations
        )
        failovers += outcome.record.failovers
        failsafe += outcome.failsafe
        kinds |= {f.kind for f in outcome.record.faults}
    assert failovers > 10  # the slice does fail over, often
    assert kinds >= {"kill", "pause", "partition", "kill-mid-promotion", "pause-mid-commit"}
    assert kinds >= {"db-stall", "db-lost", "db-cut"}


def test_the_failsafe_is_reached_through_the_backups_acks() -> None:
    """A primary cut off from its database, whose backup still acknowledges it, keeps
    its role without writes (the failsafe), and the pair recovers after the heal."""
    seeds = _seeds(lambda p: p.kind == "db-cut" and p.what == "primary" and p.duration > 2.4, 30)
    assert any(run_schedule(s).failsafe for s in seeds), f"no schedule of {seeds} reached it"


def test_a_seed_replays_exactly() -> None:
    def digest(seed: int) -> str:
        text = run_schedule(seed, trace=True).trace
        text = re.sub(r"pid \d{1,7}\b|in \d+\.\d+ s", "", text)  # the real pid, wall times
        return hashlib.sha256(text.encode()).hexdigest()

    assert digest(11) == digest(11)
    assert digest(12) != digest(11)


# -- what the simulation found that is not fixed yet (strict: they fail once it is) ---


def test_two_servers_restarted_together_do_not_both_force_the_dead_holders_lease() -> None:
    """Found by the simulation (seeds 1160, 1223, 3172, 4847 of its first schedules; by make
    chaos too, fixed in 79a4bfa): a SIGKILL of the primary, then of the backup in the middle
    of its promotion, during a short database stall; both servers, restarted together, read
    the lease of their dead predecessor and took it by force, the second from the first."""
    faults = [
        Planned(0.7, "db-stall", "database", 0.6),
        Planned(0.9, "kill-mid-promotion", "primary+backup", pause_after=0.02),
    ]
    both_saw_it = 0
    for seed in range(1, 9):
        outcome = run_schedule(seed, trace=True, planned=faults)
        assert outcome.violations == [], f"seed {seed}: {outcome.violations}"
        both_saw_it += outcome.trace.count(" 20167 ") >= 2  # the case itself was reached
    assert both_saw_it


def test_a_duplicate_proxy_exits_with_one_line() -> None:
    faults = [Planned(1.97, "kill", "scs", 0.56), Planned(2.31, "pause", PROXY, 3.88)]
    assert run_schedule(28354, planned=faults).violations == []


def _seeds(wanted: Callable[[Planned], bool], count: int, start: int = 1) -> list[int]:
    """The first ``count`` seeds from ``start`` whose schedule has a fault ``wanted``."""
    found: list[int] = []
    seed = start
    while len(found) < count:
        if any(wanted(p) for p in plan(random.Random(seed))):
            found.append(seed)
        seed += 1
    return found


def _first_violation(seeds: list[int]) -> list[str]:
    for seed in seeds:
        violations = run_schedule(seed).violations
        if violations:
            return [f"seed {seed}: {v}" for v in violations]
    return []


# -- mutation checks: the production code made wrong, inside the test ---------------


def test_it_catches_a_removed_epoch_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """``commit_plan`` without its fencing check: a deposed primary's write lands."""
    source = textwrap.dedent(inspect.getsource(store_base.commit_plan))
    assert "if current != epoch:" in source
    namespace: dict[str, Any] = {}
    exec(  # the very function, its epoch check switched off
        compile(source.replace("if current != epoch:", "if False:"), "<mutant>", "exec"),
        store_base.__dict__,
        namespace,
    )
    monkeypatch.setattr(store_base, "commit_plan", namespace["commit_plan"])
    seeds = _seeds(lambda p: p.kind == "pause-mid-commit" and p.mode == "until-deposed", 12)
    found = _first_violation(seeds)
    assert found, f"no violation in {seeds}"
    assert any("while the lease was at epoch" in v or "epoch" in v for v in found), found


def test_it_catches_a_forced_promotion_on_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's promotion always forced: a silent primary (alive, holding a
    valid lease) is replaced without proof of death."""
    real = ManagementClient.switch_to_primary

    async def always_forced(self: ManagementClient, **options: Any) -> dict[str, Any]:
        return await real(self, **{**options, "force": True})

    monkeypatch.setattr(ManagementClient, "switch_to_primary", always_forced)
    seeds = _seeds(
        lambda p: p.kind == "partition" and p.what == "scs-primary" and p.mode != "delay", 12
    )
    found = _first_violation(seeds)
    assert any("no proof of death" in v for v in found), found or f"no violation in {seeds}"


def test_it_catches_a_skipped_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """``catch_up`` that applies nothing: a commit whose answer was lost stays missing
    from memory, and the primary can never write again."""

    async def skipped(self: ConfigService) -> int:
        return 0

    monkeypatch.setattr(ConfigService, "catch_up", skipped)
    seeds = _seeds(lambda p: p.kind == "db-lost", 12)
    found = _first_violation(seeds)
    assert found, f"no violation in {seeds}"
