"""When a dead server is started again: back-off with jitter and an intensity limit (pure).

One :class:`Restarts` object per server. Exponential back-off from
``restart-backoff`` up to ``restart-backoff-max``, with jitter; at most
``restart-limit`` restarts in ``restart-window`` seconds, then an alarm and
slow retries at ``restart-backoff-max``, never a silent give-up. Only failed
starts count towards that limit: a server that served (primary, backup or
proxy) for ``restart-min-uptime`` seconds was started successfully, and its
death starts the count again (supervisord's ``startsecs``). A pair killed
five times in a minute from outside, each time back and serving within a
second, was otherwise held down 30 s as a crash loop, both members at once
(make chaos, PostgreSQL seed 738611). A server an
operator stopped is never restarted (until an operator starts it), nor one
with autorestart off; one whose pair is paused has its restart held until
the pair is resumed.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field

from . import events
from .actions import Emit
from .config import RestartPolicy


@dataclass
class Restarts:
    """One server's restarts: what is scheduled, what was done, and why not.

    Attributes:
        server: the server's section.
        settings: its ``restart-*`` options.
        autorestart: its ``autorestart`` option.
        history: when each restart was started, within the last window.
        consecutive: restarts since the server was last seen up (the back-off's exponent).
        next_start: when the scheduled restart is due (None: none scheduled).
        held: it died while its pair was paused: scheduled when the pair is resumed.
        stopped: an operator stopped it: never restarted until an operator starts it.
        limit_alarmed: the intensity alarm is raised (once until below the limit again).
        serving_since: when it was first seen serving since its last start (None: not yet).
    """

    server: str
    settings: RestartPolicy
    autorestart: bool = True
    history: collections.deque[float] = field(default_factory=collections.deque)
    consecutive: int = 0
    next_start: float | None = None
    held: bool = False
    stopped: bool = False
    limit_alarmed: bool = False
    serving_since: float | None = None

    def schedule(self, now: float, rng: random.Random, *, paused: bool) -> list[Emit]:
        """The server is down: schedule its restart (or say why not); the lines to log."""
        name = self.server
        policy = self.settings
        # Judged at its death, whatever happens next: a start that failed later (an
        # operator's, after a stop) must not count the time it was down as served.
        if self.serving_since is not None and now - self.serving_since >= policy.min_uptime:
            self.history.clear()  # it was started successfully: not a crash loop
        self.serving_since = None
        if self.stopped:
            return [
                Emit(events.NOT_RESTARTED, {"server": name, "reason": "stopped by an operator"})
            ]
        if not self.autorestart:
            return [Emit(events.NOT_RESTARTED, {"server": name, "reason": "autorestart is off"})]
        if paused:
            self.held = True
            return [Emit(events.NOT_RESTARTED, {"server": name, "reason": "its pair is paused"})]
        out: list[Emit] = []
        self._forget_before(now - policy.window)
        if len(self.history) >= policy.limit:
            delay = policy.backoff_max
            if not self.limit_alarmed:
                self.limit_alarmed = True
                fields = {"server": name, "count": len(self.history), "window": policy.window}
                out.append(Emit(events.RESTART_LIMIT, {**fields, "delay": delay}))
        else:
            self.limit_alarmed = False
            delay = min(policy.backoff * 2**self.consecutive, policy.backoff_max)
            delay *= rng.uniform(0.8, 1.2)  # jitter: no thundering herd
            delay = min(delay, policy.backoff_max)
        self.consecutive += 1
        self.next_start = now + delay
        out.append(
            Emit(
                events.RESTART_SCHEDULED,
                {"server": name, "attempt": self.consecutive, "delay": delay},
            )
        )
        return out

    def due(self, now: float) -> bool:
        """Whether the scheduled restart is due at ``now``; if so it is no longer scheduled."""
        if self.next_start is None or self.next_start > now:
            return False
        self.next_start = None
        return True

    def restarted(self, now: float) -> str:
        """A restart is started at ``now`` (it counts towards the limit); why, for the log."""
        self.history.append(now)
        self.serving_since = None
        return f"restart {self.consecutive}"

    def cancel(self) -> None:
        """No restart is needed any more (the server runs, or is being adopted)."""
        self.next_start = None

    def seen_up(self) -> None:
        """The server answered: the back-off starts again from ``restart-backoff``."""
        self.consecutive = 0

    def serving(self, now: float) -> None:
        """The server says it serves (a role other than starting) at ``now``."""
        if self.serving_since is None:
            self.serving_since = now

    def stop_by_operator(self) -> None:
        """An operator stopped the server: nothing is restarted until :meth:`start_by_operator`."""
        self.stopped = True
        self.next_start = None

    def start_by_operator(self) -> None:
        """An operator started the server: restarts as usual again."""
        self.stopped = False

    def resume(self, now: float, rng: random.Random) -> list[Emit]:
        """The server's pair is resumed: a restart held while paused is scheduled now."""
        if not self.held:
            return []
        self.held = False
        return self.schedule(now, rng, paused=False)

    def count(self) -> int:
        """Restarts within the last window, as last counted (for the status view)."""
        return len(self.history)

    def _forget_before(self, t: float) -> None:
        while self.history and self.history[0] <= t:
            self.history.popleft()
