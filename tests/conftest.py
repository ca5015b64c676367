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

# Every Person the suite creates is hashed at a test cost (0.03 ms, not OWASP's 0.45 s):
# the suite logs in thousands of times. Servers and cfgctl it starts inherit it.
os.environ.setdefault("CONFSERV_PASSWORD_COST", "n=2,r=1,p=1")

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
