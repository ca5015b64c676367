"""When a dead server is started again: back-off with jitter and an intensity limit (pure).

Exponential back-off from ``restart-backoff`` up to ``restart-backoff-max``,
with jitter; at most ``restart-limit`` restarts in ``restart-window`` seconds,
then an alarm and slow retries at ``restart-backoff-max``, never a silent
give-up. A server an operator stopped, one with autorestart off, and one
whose pair is paused are not restarted (a paused pair's restart is held).
"""

from __future__ import annotations

import random

from . import events
from .actions import Emit
from .state import Member


def schedule_restart(m: Member, now: float, rng: random.Random, *, paused: bool) -> list[Emit]:
    """Set ``m.next_start`` (or say why not); the lines to log."""
    name = m.spec.section
    if m.operator_stopped:
        return [Emit(events.NOT_RESTARTED, {"server": name, "reason": "stopped by an operator"})]
    if not m.spec.autorestart:
        return [Emit(events.NOT_RESTARTED, {"server": name, "reason": "autorestart is off"})]
    if paused:
        m.held_restart = True
        return [Emit(events.NOT_RESTARTED, {"server": name, "reason": "its pair is paused"})]
    out: list[Emit] = []
    policy = m.spec.restart
    while m.restarts and m.restarts[0] <= now - policy.window:
        m.restarts.popleft()
    if len(m.restarts) >= policy.limit:
        delay = policy.backoff_max
        if not m.limit_alarmed:
            m.limit_alarmed = True
            fields = {"server": name, "count": len(m.restarts), "window": policy.window}
            out.append(Emit(events.RESTART_LIMIT, {**fields, "delay": delay}))
    else:
        m.limit_alarmed = False
        delay = min(policy.backoff * 2**m.consecutive, policy.backoff_max)
        delay *= rng.uniform(0.8, 1.2)  # jitter: no thundering herd
        delay = min(delay, policy.backoff_max)
    m.consecutive += 1
    m.next_start = now + delay
    out.append(
        Emit(events.RESTART_SCHEDULED, {"server": name, "attempt": m.consecutive, "delay": delay})
    )
    return out
