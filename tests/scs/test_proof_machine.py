"""The proof-of-death property as a hypothesis state machine over real and duplicate processes.

Never a forced promotion unless the peer's process that last answered as
primary was watched by the supervisor and seen to exit; fencing only ever
of that process. Plain numbers, no clock (the core is pure).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scs.actions import Fence, Promote, Start
from scs.core import SupervisorCore
from scs.observations import (
    AdoptionFailed,
    Booted,
    LinkLost,
    LinkUp,
    ProcessExited,
    ProcessStarted,
    PromoteDone,
    StatusSeen,
    Tick,
)

from .test_core import maybe_status, scs_settings, status_of


class World(RuleBasedStateMachine):
    """A supervisor restarted into a running pair, against processes that come and go.

    Each member has at most one real server process (the one that answers its
    management port, and may be primary) and any number of duplicates (started
    by the supervisor while the real one runs; they exit at once, proving
    nothing). The supervisor watches what it started or adopted; pidfd_open
    may fail for a live process (not visible from here). Every exit it reports
    is true; the rule checked: a forced promotion only when the peer's process
    that last answered as primary was watched, and has exited.
    """

    @initialize(primary=st.sampled_from(["a", "b"]), warm=st.booleans())
    def start(self, primary: str, warm: bool) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            self.core = SupervisorCore(scs_settings(Path(tmp)), random.Random(5))
        self.now = 0.0
        self.next_pid = 200
        self.real: dict[str, int | None] = {"a": None, "b": None}
        self.role: dict[str, str] = {"a": "backup", "b": "backup"}
        self.epoch = 1
        self.alive: set[int] = set()
        self.watched: dict[int, str] = {}  # pid -> member, as the core was told
        self.exits_reported: set[int] = set()
        self.primary_pid: dict[str, int | None] = {"a": None, "b": None}
        self.links: dict[str, bool] = {"a": False, "b": False}
        self.start_asked: set[str] = set()
        for name in ("a", "b"):
            self.real[name] = self._spawn()
        self.role[primary] = "primary"
        self.apply(self.core.step(Booted(), self.now))
        if warm:  # both answered and were adopted before anything else happened
            for name in ("a", "b"):
                self.link_comes_up(name)
                self.carry_out_adopt(name, True)

    def _spawn(self) -> int:
        self.next_pid += 1
        self.alive.add(self.next_pid)
        return self.next_pid

    def status(self, name: str) -> dict[str, Any]:
        pid = self.real[name]
        assert pid is not None
        if self.role[name] == "primary":
            self.primary_pid[name] = pid
        return {
            "role": self.role[name],
            "epoch": self.epoch,
            "pid": pid,
            "lease_ttl": 2.0,
            "engine": "sqlite",
        }

    def apply(self, actions: list[Any]) -> None:
        """Check every action; note the Starts asked for (carried out by a rule)."""
        for a in actions:
            if isinstance(a, Promote) and a.force:
                dead = self.core.peer(a.server)
                pid = self.primary_pid[dead]
                assert pid is not None, "forced with no primary ever seen"
                assert pid not in self.alive, f"forced over a live primary (pid {pid})"
                assert pid in self.exits_reported, "forced without the watched exit"
            if isinstance(a, Fence):
                assert self.watched.get(a.pid) == a.server, "fenced a pid it does not watch"
                assert a.pid == self.real[a.server], "fenced a process that is not the server"
            if isinstance(a, Start):
                self.start_asked.add(a.server)

    def _watch(self, name: str, pid: int, *, adopted: bool = False) -> None:
        self.watched[pid] = name
        self.apply(self.core.step(ProcessStarted(name, pid, adopted), self.now))

    def _answer(self, name: str) -> int | None:
        """What a status request gets now (None: no answer)."""
        return self.real[name] if self.links[name] else None

    # -- the supervisor's glue, as it may behave -------------------------------------

    @rule(name=st.sampled_from(["a", "b"]), answers=st.booleans(), visible=st.booleans())
    def carry_out_start(self, name: str, answers: bool, visible: bool) -> None:
        """Autostart asks the server first (it may time out), adopts what answers, else
        starts a process, which fails at once if the real one holds the ports."""
        if name not in self.start_asked:
            return
        self.start_asked.discard(name)
        real = self.real[name]
        if answers and real is not None:
            if visible:
                self._watch(name, real, adopted=True)
            else:
                self.apply(
                    self.core.step(AdoptionFailed(name, real, real, "not visible"), self.now)
                )
            return
        if not self.core.may_start(name):
            return
        pid = self._spawn()
        self._watch(name, pid)
        if real is None:
            self.real[name], self.role[name] = pid, "backup"
            return
        self.alive.discard(pid)  # a duplicate: port in use
        self.exits_reported.add(pid)
        self.apply(self.core.step(ProcessExited(name, pid, "exit code 2"), self.now))

    @rule(name=st.sampled_from(["a", "b"]), visible=st.booleans())
    def carry_out_adopt(self, name: str, visible: bool) -> None:
        pid = self.core.members[name].adopting
        if pid is None:
            return
        if pid in self.alive and visible:
            self._watch(name, pid, adopted=True)
        else:
            self.apply(
                self.core.step(AdoptionFailed(name, pid, self._answer(name), "gone"), self.now)
            )

    @rule(name=st.sampled_from(["a", "b"]))
    def duplicate_start(self, name: str) -> None:
        """A copy started beside the real one without being asked: it fails at once."""
        if self.core.members[name].watched is not None:
            return  # the glue never starts while it watches one
        pid = self._spawn()
        self._watch(name, pid)
        self.alive.discard(pid)
        self.exits_reported.add(pid)
        self.apply(self.core.step(ProcessExited(name, pid, "exit code 2"), self.now))

    # -- the world ------------------------------------------------------------------

    @rule(name=st.sampled_from(["a", "b"]))
    def real_process_dies(self, name: str) -> None:
        pid = self.real[name]
        if pid is None:
            return
        self.alive.discard(pid)
        self.real[name] = None
        self.role[name] = "backup"
        if self.links[name]:
            self.links[name] = False
            self.apply(self.core.step(LinkLost(name, "closed by peer"), self.now))
        if self.watched.get(pid) == name:
            self.exits_reported.add(pid)
            self.apply(self.core.step(ProcessExited(name, pid, "killed by SIGKILL"), self.now))

    @rule(name=st.sampled_from(["a", "b"]))
    def link_comes_up(self, name: str) -> None:
        if self.real[name] is not None and not self.links[name]:
            self.links[name] = True
            self.apply(self.core.step(LinkUp(name, status_of(self.status(name))), self.now))

    @rule(name=st.sampled_from(["a", "b"]))
    def link_goes_silent(self, name: str) -> None:
        if self.links[name]:
            self.links[name] = False
            self.apply(self.core.step(LinkLost(name, "ADDP timeout"), self.now))

    @rule(name=st.sampled_from(["a", "b"]), take=st.booleans())
    def promotion_answered(self, name: str, take: bool) -> None:
        peer = "b" if name == "a" else "a"
        can = self.real[name] is not None and (take or self.real[peer] is None)
        if can:
            self.epoch += 1
            self.role[name], self.role[peer] = "primary", "backup"
            self.apply(
                self.core.step(PromoteDone(name, maybe_status(self.status(name)), ""), self.now)
            )
        else:
            self.apply(self.core.step(PromoteDone(name, None, "lease-held"), self.now))

    @rule(name=st.sampled_from(["a", "b"]))
    def role_push(self, name: str) -> None:
        if self.links[name]:
            self.apply(self.core.step(StatusSeen(name, status_of(self.status(name))), self.now))

    @rule(dt=st.floats(min_value=0.0, max_value=15.0))
    def time_passes(self, dt: float) -> None:
        end = self.now + dt
        while (d := self.core.next_deadline()) is not None and d <= end:
            self.now = max(self.now, d)
            self.apply(self.core.step(Tick(), self.now))
        self.now = end

    @invariant()
    def a_watched_pid_is_one_the_supervisor_was_told_of(self) -> None:
        if not hasattr(self, "core"):
            return
        for name, m in self.core.members.items():
            if name in ("a", "b") and m.watched is not None:
                assert self.watched.get(m.watched) == name


TestWorld = World.TestCase
TestWorld.settings = settings(max_examples=200, stateful_step_count=40)
