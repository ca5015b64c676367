"""Shared test set-up.

Determinism rules for this suite:
- timing logic runs on trio's MockClock (``autojump_threshold=0``) or on plain
  numbers fed to the sans-IO cores, never on real sleeps;
- tests that must use the wall clock (real processes, real sockets) wait for
  a condition under a generous ``fail_after`` deadline, never a fixed sleep;
- hypothesis runs without per-example deadlines (the machine is shared) and,
  under CI, derandomized so that a failure replays.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")
