"""Each misconfiguration fault, once, on the real processes (SQLite), with fixed seeds.

Seeds 5577 and 5578 draw a supervisor SIGKILLed just after its primary was
stopped (SIGSTOP), restarted, and the primary resumed 7.5 s later: the new
supervisor cannot adopt the stopped primary and starts a copy, whose exit
proves nothing. Then a third master whose Application the pair does not
link, and a second process of the primary's Application on other ports. The
checker (and its database-wide oracle) must find nothing, and the pair must
heal.
"""

from __future__ import annotations

import random
import time

import pytest

from .misconfig import KINDS
from .real import plan, run

#: Real fault-injection slices: make chaos and CI run them, not make test (its 5 minutes).
pytestmark = [pytest.mark.integration, pytest.mark.chaos_slice]

SEED = 5577


async def test_each_misconfiguration_fault_holds_every_invariant() -> None:
    planned = [p.label for s in (SEED, SEED + 1) for p in plan(random.Random(s), "sqlite")]
    assert {label.split()[0] for label in planned} == set(KINDS), f"pick other seeds: {planned}"
    summary = await run(schedules=2, seed=SEED, engine="sqlite", deadline=time.monotonic() + 40)
    assert summary.schedules == 2
    assert summary.violations == []
    assert sorted(summary.faults) == sorted(planned)  # each was injected
    assert summary.acked > 0
