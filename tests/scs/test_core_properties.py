"""The supervisor core's invariants against a simulated world on a simulated clock (hypothesis).

A pair (``a``, ``b``) and a proxy (``p``) run as processes that come and go:
killed, stopped (SIGSTOP) and continued, started twice (the copy cannot bind
the ports and exits at once). The pair's lease lives in a simulated database:
a holder process, an epoch and an expiry, renewed by a holder that runs;
``switch-to-primary`` takes it when it has expired, or by force. Links come
up and go silent, answers get lost, operators stop, start, pause, resume and
switch over, and time passes in steps to the core's deadlines. The core is
told only what the supervisor would see, through ``step``. Checked on every
action it returns:

1. No promotion while the holder's lease is valid except on proof of death:
   a forced Promote only when the lease's holder is gone and its exit was
   reported to the core (a watched process seen to end).
2. After an operator stops a server, no action for it (start, stop, adopt,
   promote, demote, fence, redirect) until an operator starts it again,
   except the stop itself.
3. Restarts obey the intensity limit: a restart that finds ``restart-limit``
   restarts within ``restart-window`` since the last successful start (one
   that served, a role other than starting, for ``restart-min-uptime``)
   comes at least ``restart-backoff-max`` after the previous one; a server
   that is down is never silently given up.
4. Only the very process watched, the server's own, is fenced; no automatic
   promotion in a paused pair.
5. Every transition is in the pair's table (the machine raises otherwise),
   and a failover record exists exactly in the failover states.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scs.actions import Action, Adopt, Demote, Emit, Fence, Promote, Redirect, Start, Stop
from scs.core import SupervisorCore
from scs.observations import (
    AdoptionFailed,
    Booted,
    DemoteDone,
    LinkLost,
    LinkUp,
    Observation,
    OperatorPause,
    OperatorResume,
    OperatorStart,
    OperatorStop,
    OperatorSwitchover,
    ProcessExited,
    ProcessStarted,
    PromoteDone,
    StartFailed,
    StatusSeen,
    Tick,
)
from scs.pair_machine import FAILOVER_STATES
from scs.state import ProcessState
from scs.status import ServerStatus, parse_status
from tests.helpers.examples import examples

from .test_core import scs_settings

TTL = 3.0  # the servers' lease-ttl
RENEW = 1.0  # how often a running holder renews
LIMITS = "restart-backoff = 0.1\nrestart-limit = 2\nrestart-window = 30\nrestart-backoff-max = 4\n"
NAMES = ("a", "b", "p")
MEMBERS = ("a", "b")
EPS = 1e-9


class World(RuleBasedStateMachine):
    """See module docstring."""

    @initialize(
        running=st.booleans(),
        warm=st.booleans(),
        primary=st.sampled_from(MEMBERS),
        recorded=st.booleans(),
        stopped=st.booleans(),
    )
    def boot(self, running: bool, warm: bool, primary: str, recorded: bool, stopped: bool) -> None:
        """``running``: a supervisor restarted into a running installation, whose
        primary may be stopped (SIGSTOP: it never answers the new supervisor); ``warm``:
        every server answered and was adopted first; ``recorded``: its host's records
        know every process, adopted at once without a word from any of them."""
        with tempfile.TemporaryDirectory() as tmp:
            self.core = SupervisorCore(scs_settings(Path(tmp), LIMITS))
        self.now = 0.0
        self.next_pid = 100
        self.real: dict[str, int | None] = dict.fromkeys(NAMES)
        self.role: dict[str, str] = {"a": "backup", "b": "backup", "p": "proxy"}
        self.alive: set[int] = set()
        self.sigstopped: set[int] = set()
        #: A process stopped inside a SQLite transaction: nobody takes the lease, and
        #: every promotion waits unanswered, until it is killed or continued.
        self.locked_by: int | None = None
        self.links: dict[str, bool] = dict.fromkeys(NAMES, False)
        self.watched: dict[int, str] = {}  # pid -> server, as the core was told
        self.exits_reported: set[int] = set()
        self.epoch = 1
        self.holder: int | None = None
        self.expires = 0.0
        self.stopped_by_op: set[str] = set()
        self.restarts: dict[str, list[float]] = {name: [] for name in NAMES}
        #: when the core was first told each server serves since its last start
        self.serving_since: dict[str, float | None] = dict.fromkeys(NAMES)
        self.starts: set[str] = set()
        self.adopts: dict[str, int] = {}
        self.promotes: list[tuple[str, bool]] = []
        self.demotes: list[str] = []
        self.stops: set[str] = set()
        self.fences: list[tuple[str, int]] = []
        if running:  # a supervisor restarted into a running installation
            for name in NAMES:
                self.real[name] = self._spawn()
            self.role[primary] = "primary"
            self.holder, self.expires = self.real[primary], TTL
            if stopped:
                self.sigstopped.add(self.holder)
                self.locked_by = self.holder
        self.feed(Booted())
        if running and warm:  # every server answered and was adopted before anything else
            for name in NAMES:
                self.link_comes_up(name)
                self.carry_out_adopt(name, visible=True)
        elif running and recorded:  # adopted from the records, before any answer
            for name in NAMES:
                pid = self.real[name]
                assert pid is not None
                self.starts.discard(name)
                self._watch(name, pid, adopted=True)
                event("adopted from the records" + (" with the primary stopped" if stopped else ""))

    # -- talking to the core ------------------------------------------------------

    def feed(self, obs: Observation) -> None:
        """Step the core and check every action (see module docstring)."""
        status = getattr(obs, "status", None)  # a link up, a status, a promotion's answer
        if isinstance(status, ServerStatus) and status.role not in (None, "starting"):
            server = str(getattr(obs, "server", ""))
            if server in self.serving_since and self.serving_since[server] is None:
                self.serving_since[server] = self.now
        actions = self.core.step(obs, self.now)
        for action in actions:
            self.check(action, obs)
        if not isinstance(obs, Tick):
            # The supervisor's decision loop wakes after every observation and ticks
            # the core (scs.supervisor.Supervisor.feed), not only at its deadlines.
            self.feed(Tick())

    def check(self, a: Action, obs: Observation) -> None:
        if isinstance(a, Emit):
            # A restart scheduled (40103), or not restarted (40105): the death is judged
            # then, whatever comes next: was the last start a success?
            if a.event.id in (40103, 40105):
                name = str(a.fields["server"])
                since = self.serving_since[name]
                policy = self.core.settings.servers[name].restart
                if since is not None and self.now - since >= policy.min_uptime:
                    self.restarts[name].clear()
                self.serving_since[name] = None
            return
        named = {a.proxy, a.server} if isinstance(a, Redirect) else {a.server}
        for name in named & self.stopped_by_op:
            by_operator = isinstance(a, Stop) and obs == OperatorStop(name, "op")
            assert by_operator, f"{a} after an operator stopped '{name}'"
        if isinstance(a, Promote):
            pair = self.core.pair_of(a.server)
            assert pair is not None
            if pair.paused:
                event("a promotion in a paused pair (switchover)")
                assert isinstance(obs, DemoteDone), "an automatic promotion in a paused pair"
            valid = self.holder is not None and self.expires > self.now
            if a.force:
                event("forced promotion" + (" over a valid lease" if valid else ""))
            if a.force and valid and self.holder != self.real[a.server]:
                assert self.holder not in self.alive, "forced over a live holder"
                assert self.holder in self.exits_reported, "forced without proof of death"
            self.promotes.append((a.server, a.force))
        elif isinstance(a, Fence):
            assert self.watched.get(a.pid) == a.server, "fenced a pid it does not watch"
            assert a.pid == self.real[a.server], "fenced a process that is not the server"
            event("fenced")
            if self.core.members[a.server].reported is None:
                event("fenced a process found running that never answered")
            self.fences.append((a.server, a.pid))
        elif isinstance(a, Start):
            if a.why.startswith("restart"):
                times = self.restarts[a.server]
                policy = self.core.settings.servers[a.server].restart
                recent = [t for t in times if t > self.now - policy.window]
                if len(recent) >= policy.limit:
                    event("a restart past the intensity limit")
                    gap = self.now - times[-1]
                    assert gap >= policy.backoff_max - EPS, f"past the limit, a restart {gap} s on"
                times.append(self.now)
            self.serving_since[a.server] = None
            self.starts.add(a.server)
        elif isinstance(a, Adopt):
            self.adopts[a.server] = a.pid
        elif isinstance(a, Demote):
            self.demotes.append(a.server)
        elif isinstance(a, Stop):
            self.stops.add(a.server)

    def status(self, name: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"role": self.role[name], "pid": self.real[name], "serial": 5}
        fields["epoch"] = self.epoch
        if name in MEMBERS:
            fields.update(lease_ttl=TTL, engine="sqlite")
        return fields

    def answers(self, name: str) -> bool:
        pid = self.real[name]
        return pid is not None and pid not in self.sigstopped

    def _spawn(self) -> int:
        self.next_pid += 1
        self.alive.add(self.next_pid)
        return self.next_pid

    def _watch(self, name: str, pid: int, *, adopted: bool = False) -> None:
        self.watched[pid] = name
        self.feed(ProcessStarted(name, pid, adopted))

    def _exit(self, name: str, pid: int, how: str) -> None:
        if self.watched.get(pid) == name:
            del self.watched[pid]
            self.exits_reported.add(pid)
            self.feed(ProcessExited(name, pid, how))

    def _die(self, name: str, *, exit_first: bool) -> None:
        pid = self.real[name]
        if pid is None:
            return
        self.alive.discard(pid)
        self.sigstopped.discard(pid)
        if self.locked_by == pid:
            self.locked_by = None  # its transaction dies with it
        self.real[name] = None
        self.role[name] = "proxy" if name == "p" else "backup"
        if exit_first:
            self._exit(name, pid, "killed by SIGKILL")
        if self.links[name]:
            self.links[name] = False
            self.feed(LinkLost(name, "closed by peer"))
        if not exit_first:
            self._exit(name, pid, "killed by SIGKILL")

    def _take_lease(self, name: str) -> None:
        self.holder, self.expires = self.real[name], self.now + TTL
        self.epoch += 1
        self.role[name] = "primary"

    # -- the supervisor's glue, carrying out actions ------------------------------

    def carry_out_start(self, name: str, fails: bool) -> None:
        if name not in self.starts:
            return
        self.starts.discard(name)
        if not self.core.may_start(name):
            return
        if fails:
            self.feed(StartFailed(name, "[Errno 2] No such file or directory"))
            return
        pid = self._spawn()
        self._watch(name, pid)
        if self.real[name] is not None:  # a copy: the ports are taken, it exits at once
            self.alive.discard(pid)
            self._exit(name, pid, "exit code 2")
            return
        self.real[name] = pid
        if name in MEMBERS and (self.holder is None or self.expires <= self.now):
            self._take_lease(name)  # at start-up a server takes a lease nobody holds

    @rule(name=st.sampled_from(NAMES))
    def duplicate_start(self, name: str) -> None:
        """A copy started beside the real one (its start was decided before the server
        answered, say): it cannot bind the ports and exits at once, proving nothing."""
        if self.core.members[name].watched is not None or self.real[name] is None:
            return
        pid = self._spawn()
        self._watch(name, pid)
        self.alive.discard(pid)
        self._exit(name, pid, "exit code 2")

    def carry_out_adopt(self, name: str, visible: bool) -> None:
        pid = self.adopts.pop(name, None)
        if pid is None:
            return
        if pid in self.alive and visible:
            self._watch(name, pid, adopted=True)
        else:
            answer = self.real[name] if self.answers(name) else None
            self.feed(AdoptionFailed(name, pid, answer, "no such process on this host"))

    def carry_out_stop(self, name: str) -> None:
        if name in self.stops:
            self.stops.discard(name)
            pid = self.real[name]
            if pid is not None and self.watched.get(pid) == name:
                self._die(name, exit_first=False)

    def carry_out_fence(self) -> None:
        if self.fences:
            name, pid = self.fences.pop(0)
            if self.real[name] == pid:
                self._die(name, exit_first=True)

    def carry_out_promote(self, lost: bool) -> None:
        if not self.promotes:
            return
        name, force = self.promotes[0]
        pid = self.real[name]
        locked = self.locked_by is not None and self.locked_by != pid
        if locked and pid is not None and pid not in self.sigstopped:
            event("a promotion waits on the lock of a stopped process")
            return  # unanswered (and the commands behind it) until the lock is free
        self.promotes.pop(0)
        if pid is None or pid in self.sigstopped:
            self.feed(PromoteDone(name, None, "no answer in time"))
            return
        took = force or self.holder == pid or self.holder is None or self.expires <= self.now
        if took and self.holder != pid:
            self._take_lease(name)
        if lost or not took:  # (a promotion that landed but whose answer was lost, too)
            self.feed(PromoteDone(name, None, "no answer in time" if lost else "lease-held"))
        else:
            self.feed(PromoteDone(name, parse_status(self.status(name))))

    def carry_out_demote(self) -> None:
        if not self.demotes:
            return
        name = self.demotes.pop(0)
        if not self.answers(name):
            self.feed(DemoteDone(name, False, "no answer in time"))
            return
        self.role[name] = "backup"
        if self.holder == self.real[name]:
            self.holder = None  # released
        self.feed(DemoteDone(name, True))

    # -- the world ----------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), exit_first=st.booleans())
    def process_dies(self, name: str, exit_first: bool) -> None:
        self._die(name, exit_first=exit_first)

    @rule(name=st.sampled_from(MEMBERS), inside=st.booleans())
    def process_is_stopped(self, name: str, inside: bool) -> None:
        """SIGSTOP; ``inside`` a write transaction, it keeps SQLite's lock."""
        pid = self.real[name]
        if pid is not None:
            self.sigstopped.add(pid)
            if inside and self.locked_by is None:
                self.locked_by = pid

    @rule(name=st.sampled_from(MEMBERS))
    def process_continues(self, name: str) -> None:
        pid = self.real[name]
        if pid is not None and pid in self.sigstopped:
            self.sigstopped.discard(pid)
            if self.locked_by == pid:
                self.locked_by = None
            self._self_fence()

    @rule(name=st.sampled_from(NAMES))
    def link_comes_up(self, name: str) -> None:
        if self.answers(name) and not self.links[name]:
            self.links[name] = True
            self.feed(LinkUp(name, parse_status(self.status(name))))

    @rule(name=st.sampled_from(NAMES))
    def link_goes_silent(self, name: str) -> None:
        if self.links[name]:
            self.links[name] = False
            self.feed(LinkLost(name, "ADDP timeout"))

    @rule(name=st.sampled_from(NAMES))
    def status_push(self, name: str) -> None:
        if self.links[name] and self.answers(name):
            self.feed(StatusSeen(name, parse_status(self.status(name))))

    def _self_fence(self) -> None:
        """A running primary without a valid lease of its own drops to backup (and says so)."""
        for name in MEMBERS:
            pid = self.real[name]
            if pid is None or pid in self.sigstopped or self.role[name] != "primary":
                continue
            if self.holder != pid or self.expires <= self.now:
                self.role[name] = "backup"
                if self.links[name]:
                    self.feed(StatusSeen(name, parse_status(self.status(name))))

    @rule(
        kind=st.sampled_from(["start", "adopt", "stop", "fence", "promote", "demote"]),
        fails=st.booleans(),
        visible=st.booleans(),
        lost=st.booleans(),
    )
    def carry_out_one(self, kind: str, fails: bool, visible: bool, lost: bool) -> None:
        """The glue carries out one pending action of ``kind`` (others wait: interleavings)."""
        if kind == "start" and self.starts:
            self.carry_out_start(sorted(self.starts)[0], fails)
        elif kind == "adopt" and self.adopts:
            self.carry_out_adopt(sorted(self.adopts)[0], visible)
        elif kind == "stop" and self.stops:
            self.carry_out_stop(sorted(self.stops)[0])
        elif kind == "fence":
            self.carry_out_fence()
        elif kind == "promote":
            self.carry_out_promote(lost)
        elif kind == "demote":
            self.carry_out_demote()

    def _settle(self, fails: bool, visible: bool, lost: bool) -> None:
        """Carry out everything asked for so far (and what that asks for), in order."""
        for _ in range(50):
            if self.starts:
                self.carry_out_start(sorted(self.starts)[0], fails)
            elif self.adopts:
                self.carry_out_adopt(sorted(self.adopts)[0], visible)
            elif self.stops:
                self.carry_out_stop(sorted(self.stops)[0])
            elif self.fences:
                self.carry_out_fence()
            elif self.promotes:
                self.carry_out_promote(lost)
            elif self.demotes:
                self.carry_out_demote()
            else:
                return

    @rule(
        dt=st.floats(min_value=0.0, max_value=12.0),
        fails=st.booleans(),
        visible=st.booleans(),
        lost=st.booleans(),
    )
    def time_passes(self, dt: float, fails: bool, visible: bool, lost: bool) -> None:
        """The glue carries out what is pending (with these outcomes), then time passes
        in steps: the holder renews, the core is ticked at its deadlines."""
        end = self.now + dt
        for _ in range(1000):
            self._settle(fails, visible, lost)
            deadline = self.core.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.feed(Tick())
                continue
            target = min(end, self.now + RENEW, end if deadline is None else deadline)
            if target <= self.now:
                return
            self.now = target
            holder = self.holder
            if holder in self.alive and holder not in self.sigstopped and self.expires > self.now:
                self.expires = self.now + TTL  # renewed
            self._self_fence()
        raise AssertionError("the core's next deadline does not move on after a Tick")

    # -- operators ----------------------------------------------------------------

    @rule(
        command=st.sampled_from(["stop", "start", "pause", "resume", "switchover"]),
        name=st.sampled_from(NAMES),
    )
    def operator(self, command: str, name: str) -> None:
        """An operator's command (a server's for stop and start, else the pair's)."""
        if command == "stop":
            self.stopped_by_op.add(name)
            self.feed(OperatorStop(name, "op"))
        elif command == "start":
            self.stopped_by_op.discard(name)
            self.feed(OperatorStart(name, "op"))
        elif command == "pause":
            self.feed(OperatorPause("a", "op"))
        elif command == "resume":
            self.feed(OperatorResume("a", "op"))
        else:
            self.feed(OperatorSwitchover("a", "op"))

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def a_failover_record_exactly_in_the_failover_states(self) -> None:
        if not hasattr(self, "core"):
            return
        for pair in self.core.pairs.values():
            assert (pair.failover is not None) == (pair.state in FAILOVER_STATES)

    @invariant()
    def watched_pids_are_those_the_core_was_told_of(self) -> None:
        if not hasattr(self, "core"):
            return
        for name, m in self.core.members.items():
            if m.watched is not None:
                assert self.watched.get(m.watched) == name

    @invariant()
    def a_server_that_is_down_is_never_silently_given_up(self) -> None:
        if not hasattr(self, "core"):
            return
        for name, m in self.core.members.items():
            pair = self.core.pair_of(name)
            if m.process != ProcessState.DOWN or m.operator_stopped or name in self.starts:
                continue
            if (pair is not None and pair.paused) or self.core.startup.is_waiting(name):
                continue
            if m.restart.held or m.adopting is not None:
                continue
            assert m.restart.next_start is not None, f"'{name}' is down and given up"


TestWorld = World.TestCase
# 400 runs of up to 60 steps in make test (it keeps under 5 minutes; HYPOTHESIS_SCALE for more)
TestWorld.settings = settings(max_examples=examples(400), stateful_step_count=60, deadline=None)
