"""A short bounded run of the real-process fault injection (``make chaos`` runs 200)."""

from __future__ import annotations

import time

import pytest

from .real import run

pytestmark = pytest.mark.integration


async def test_a_few_real_schedules_hold_every_invariant() -> None:
    summary = await run(schedules=3, seed=7, engine="sqlite", deadline=time.monotonic() + 50)
    assert summary["schedules"] >= 1
    assert summary["violations"] == []
    assert summary["acked"] > 0
