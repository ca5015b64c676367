"""The supervisor election's rules against a simulated database on a simulated clock (hypothesis).

Two or three supervisors, each an :class:`~scs.election.Election`, share one
simulated supervisor lease: a row with an epoch, a holder and an expiry on the
database's clock (offset from the supervisors'). Their requests reach the
database after random delays, and their answers come back after random
delays; some are lost (the glue then reports ``unreachable`` at its timeout);
a supervisor dies (its requests and commands already on their way still
arrive), is restarted as a new process, is cut off from the database and
healed. Time passes in random steps and to the last instant an active
supervisor may act. Acting supervisors send commands, each carrying their
epoch, to two servers that keep the newest supervisor epoch they accepted and
refuse older ones; a command reaches its server within ``CMD_MAX`` (less than
the margin). Checked at every instant something happens:

1. At no instant are two supervisors acting; one that is acting holds the
   lease at its epoch on the database, and that lease ends more than
   ``margin`` later (the supervisor stops acting at least ``margin`` before).
2. Every command sent while acting carries an epoch no older than any command
   accepted before it; across both servers no command of an older epoch is
   ever accepted after one of a newer epoch; one epoch's accepted commands all
   come from one supervisor.
3. Liveness: after the last disturbance (a death, a restart, a cut or heal, a
   lost request or answer of a supervisor that reaches the database), while
   some live supervisor reaches the database, a supervisor is acting again
   within ``BOUND`` = d1 + ttl + max(retry, d2) + 2 round trips, as the
   module's docstring states.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scs.election import (
    Action,
    BecomeActive,
    BecomeStandby,
    Election,
    Mode,
    ReadLease,
    ReleaseLease,
    RenewLease,
    TakeLease,
)
from tests.helpers.examples import examples

TTL, RENEW, RETRY, MARGIN = 3.0, 1.0, 0.5, 0.5
FAST, SLOW = 0.05, 0.6  # one-way delays: usually under FAST, in a slow example up to SLOW
TIMEOUT = 1.0  # the glue gives a database call up after this (then: unreachable)
CMD_MAX = 0.45  # a command reaches its server within this (less than MARGIN)
OFFSET = 1000.0  # the database clock is this far ahead of the supervisors'
RTT = min(2 * SLOW, TIMEOUT)  # an answer later than TIMEOUT is a loss
BOUND = SLOW + TTL + max(RETRY, SLOW) + 2 * RTT
TARGETS = ("server-a", "server-b")
EPS = 1e-9

#: Makes a supervisor's machine (the mutation checks replace it with a broken one).
make_election: Callable[[str], Election] = lambda name: Election(  # noqa: E731
    name, ttl=TTL, renew=RENEW, retry=RETRY, margin=MARGIN
)


@dataclass
class Lease:
    """The database's supervisor lease row (times on the database clock)."""

    epoch: int = 0
    holder: str = ""
    expires_at: float = OFFSET


@dataclass
class Slot:
    """One supervisor host: its current process's machine."""

    machine: Election
    alive: bool = True
    cut: bool = False
    lossy_until: float = -1.0  # its requests are lost until then
    incarnation: int = 0
    terms: list[tuple[float, int]] = field(default_factory=list)  # (became active, epoch)


class Supervisors(RuleBasedStateMachine):
    """See module docstring."""

    @initialize(
        n=st.sampled_from((2, 3)),
        rng=st.randoms(use_true_random=False),
        slow=st.booleans(),
        loss=st.sampled_from((0.0, 0.0, 0.05, 0.2)),
        start=st.floats(0.5, 3.0),
    )
    def boot(self, n: int, rng: random.Random, slow: bool, loss: float, start: float) -> None:
        self.rng, self.slow, self.loss = rng, slow, loss
        self.now = 0.0
        self.lease = Lease()
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.slots = [Slot(make_election(f"s{i}.0")) for i in range(n)]
        self.newest = dict.fromkeys(TARGETS, 0)  # per server: the newest epoch it accepted
        self.accepted: list[tuple[float, int, str, str]] = []  # (time, epoch, by, server)
        self.refused = 0
        self.calm_since = 0.0
        self.lossy_sends = 0
        for i in range(n):
            self.carry_out(i, self.slots[i].machine.start(self.now))
        self.run_until(start)

    # -- the simulated world ----------------------------------------------------

    def later(self, delay: float, what: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, what))

    def delay(self) -> float:
        if self.slow and self.rng.random() < 0.3:
            return self.rng.uniform(0.0, SLOW)
        return self.rng.uniform(0.0, FAST)

    def db_now(self) -> float:
        return self.now + OFFSET

    def feed(self, i: int, incarnation: int, call: Callable[[Election], list[Action]]) -> None:
        """Hand an answer to supervisor ``i``, if it is still that very process."""
        slot = self.slots[i]
        if slot.alive and slot.incarnation == incarnation:
            self.carry_out(i, call(slot.machine))

    def carry_out(self, i: int, actions: list[Action]) -> None:
        """What the glue does with a machine's actions."""
        slot = self.slots[i]
        for action in actions:
            if isinstance(action, ReadLease | TakeLease | RenewLease):
                self.request(i, action)
            elif isinstance(action, ReleaseLease):
                self.later(self.delay(), partial(self.db_release, slot.machine.name, action.epoch))
            elif isinstance(action, BecomeActive):
                assert action.epoch == slot.machine.epoch
                slot.terms.append((self.now, action.epoch))
                for server in TARGETS:  # a new active supervisor adopts every server
                    self.send(i, server, self.rng.uniform(0.0, CMD_MAX))
            else:
                assert isinstance(action, BecomeStandby)

    def request(self, i: int, action: ReadLease | TakeLease | RenewLease) -> None:
        """A database call: it lands after d1, its answer comes d2 later, or the glue's
        timeout reports it unreachable (the request may still have landed)."""
        slot, inc = self.slots[i], self.slots[i].incarnation
        d1, d2 = self.delay(), self.delay()
        lost_request = self.rng.random() < self.loss or self.now < slot.lossy_until
        lost_answer = self.rng.random() < self.loss
        ask, name = action.ask, slot.machine.name

        def unreachable() -> None:
            self.feed(i, inc, lambda m: m.unreachable(ask, self.now))

        if slot.cut or lost_request or lost_answer or d1 + d2 > TIMEOUT:
            self.later(TIMEOUT, unreachable)
            if not slot.cut:
                self.lossy_sends += 1
                self.calm_since = max(self.calm_since, self.now + TIMEOUT)
        if slot.cut or lost_request:
            return

        def land() -> None:
            answer = self.db_answer(name, action)
            if lost_answer or d1 + d2 > TIMEOUT:
                return

            def back() -> None:
                if self.slots[i].cut:  # cut off while the answer was on its way
                    self.feed(i, inc, lambda m: m.unreachable(ask, self.now))
                else:
                    self.feed(i, inc, answer)

            self.later(d2, back)

        self.later(d1, land)

    def db_answer(
        self, name: str, action: ReadLease | TakeLease | RenewLease
    ) -> Callable[[Election], list[Action]]:
        """The database carries the request out now; the answer, to hand back later."""
        lease, now = self.lease, self.db_now()
        valid = bool(lease.holder) and lease.expires_at > now
        if isinstance(action, RenewLease):
            if lease.holder == name and lease.epoch == action.epoch:
                lease.expires_at = now + TTL
                return lambda m: m.renewed(action.ask, self.now)
            holder = lease.holder
            return lambda m: m.fenced(action.ask, holder, self.now)
        if isinstance(action, TakeLease) and (not valid or lease.holder == name):
            lease.epoch += 1
            lease.holder, lease.expires_at = name, now + TTL
            epoch = lease.epoch
            return lambda m: m.taken(action.ask, epoch, self.now)
        holder, epoch, remaining = lease.holder, lease.epoch, lease.expires_at - now
        return lambda m: m.lease_seen(action.ask, holder, epoch, remaining, self.now)

    def db_release(self, name: str, epoch: int) -> None:
        if self.lease.holder == name and self.lease.epoch == epoch:
            self.lease.holder, self.lease.expires_at = "", self.db_now()

    def send(self, i: int, target: str, delay: float) -> None:
        """Supervisor ``i`` sends a command to ``target``, if it may act now (the glue
        consults ``acting`` before every command)."""
        slot = self.slots[i]
        if not (slot.alive and slot.machine.acting(self.now)):
            return
        epoch, name = slot.machine.epoch, slot.machine.name
        newest = max((e for _, e, _, _ in self.accepted), default=0)
        assert epoch >= newest, (
            f"{name} sends a command at epoch {epoch} at {self.now:.6f} s, after one at "
            f"epoch {newest} was accepted"
        )
        self.later(delay, lambda: self.server_gets(target, epoch, name))

    def server_gets(self, target: str, epoch: int, by: str) -> None:
        if epoch < self.newest[target]:
            self.refused += 1
            return
        for t, e, who, server in self.accepted:
            assert e <= epoch, (
                f"{target} accepted epoch {epoch} from {by} at {self.now:.6f} s after {server} "
                f"accepted epoch {e} from {who} at {t:.6f} s"
            )
            assert e != epoch or who == by, f"epoch {epoch}: commands from {who} and {by}"
        self.newest[target] = epoch
        self.accepted.append((self.now, epoch, by, target))

    def run_until(self, target: float) -> None:
        """Let time pass to ``target``: events in order, each machine ticked at its deadlines."""
        for _ in range(100_000):
            due = [self.queue[0][0]] if self.queue else []
            for slot in self.slots:
                deadline = slot.machine.next_deadline() if slot.alive else None
                if deadline is not None:
                    due.append(deadline)
            t = min(due, default=target + 1)
            if t > target:
                break
            self.now = max(self.now, t)
            while self.queue and self.queue[0][0] <= self.now:
                heapq.heappop(self.queue)[2]()
            for i, slot in enumerate(self.slots):
                deadline = slot.machine.next_deadline() if slot.alive else None
                if deadline is not None and deadline <= self.now:
                    self.carry_out(i, slot.machine.tick(self.now))
            self.check()
        else:
            raise AssertionError("the machines' deadlines do not move on")
        self.now = max(self.now, target)
        self.check()

    # -- the invariants -----------------------------------------------------------

    def check(self) -> None:
        acting = [s for s in self.slots if s.alive and s.machine.acting(self.now)]
        names = [s.machine.name for s in acting]
        assert len(acting) <= 1, f"{names} all acting at {self.now:.6f} s"
        for slot in acting:
            m, lease = slot.machine, self.lease
            assert (lease.holder, lease.epoch) == (m.name, m.epoch), (
                f"{m.name} acts at epoch {m.epoch} at {self.now:.6f} s; the lease is {lease}"
            )
            left = lease.expires_at - self.db_now()
            assert left > MARGIN - EPS, (
                f"{m.name} acts at {self.now:.6f} s with {left:.6f} s left on its lease"
            )
        reachable = any(
            s.alive and not s.cut and s.machine.mode is not Mode.STOPPED for s in self.slots
        )
        if reachable and self.now >= self.calm_since + BOUND:
            assert acting, (
                f"nobody acting at {self.now:.6f} s, {self.now - self.calm_since:.3f} s after "
                f"the last disturbance (bound {BOUND} s); lease {self.lease}"
            )

    @invariant()
    def holds(self) -> None:
        self.check()

    def disturb(self) -> None:
        self.calm_since = max(self.calm_since, self.now)

    # -- what happens -------------------------------------------------------------

    @rule(seconds=st.floats(0.001, 2.5))
    def time_passes(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    @rule(i=st.integers(0, 2), server=st.sampled_from(TARGETS), delay=st.floats(0.0, CMD_MAX))
    def command(self, i: int, server: str, delay: float) -> None:
        if i < len(self.slots):
            self.send(i, server, delay)

    @rule(server=st.sampled_from(TARGETS), delay=st.floats(0.0, CMD_MAX))
    def command_at_the_last_instant(self, server: str, delay: float) -> None:
        """Let time pass to just before the active must stop acting, then it commands."""
        for i, slot in enumerate(self.slots):
            m = slot.machine
            if slot.alive and m.mode is Mode.ACTIVE:
                self.run_until(max(self.now, m.good_until - m.margin - 1e-6))
                self.send(i, server, delay)
                return

    @rule(i=st.integers(0, 2))
    def dies(self, i: int) -> None:
        if i < len(self.slots) and self.slots[i].alive:
            self.slots[i].alive = False
            self.disturb()

    @rule(i=st.integers(0, 2))
    def restarts(self, i: int) -> None:
        stopped = i < len(self.slots) and self.slots[i].machine.mode is Mode.STOPPED
        if i < len(self.slots) and (not self.slots[i].alive or stopped):
            slot = self.slots[i]
            slot.incarnation += 1
            slot.machine = make_election(f"s{i}.{slot.incarnation}")
            slot.alive = True
            self.disturb()
            self.carry_out(i, slot.machine.start(self.now))

    @rule(i=st.integers(0, 2), cut=st.booleans())
    def cut_off_or_healed(self, i: int, cut: bool) -> None:
        if i < len(self.slots) and self.slots[i].cut != cut:
            self.slots[i].cut = cut
            self.disturb()

    @rule()
    def the_active_dies(self) -> None:
        for slot in self.slots:
            if slot.alive and slot.machine.mode is Mode.ACTIVE:
                slot.alive = False
                self.disturb()

    @rule()
    def the_active_is_cut_off(self) -> None:
        for slot in self.slots:
            if slot.alive and slot.machine.mode is Mode.ACTIVE and not slot.cut:
                slot.cut = True
                self.disturb()

    @rule(
        around=st.floats(-1.0, 1.0),
        server=st.sampled_from(TARGETS),
        delay=st.floats(0.0, CMD_MAX),
    )
    def the_active_loses_its_requests(self, around: float, server: str, delay: float) -> None:
        """The active's database calls are lost until ``around`` seconds after the instant it
        must stop acting if none of them succeeds (the database is back just before, or
        after); it sends a command at its last instant."""
        for i, slot in enumerate(self.slots):
            m = slot.machine
            if slot.alive and m.mode is Mode.ACTIVE:
                slot.lossy_until = m.good_until - m.margin + around
                self.disturb()
                self.run_until(max(self.now, m.good_until - m.margin - 1e-6))
                self.send(i, server, delay)
                return

    @rule(seconds=st.floats(BOUND, 2 * BOUND))
    def a_long_calm(self, seconds: float) -> None:
        """Time passes long enough for a take-over."""
        self.run_until(self.now + seconds)

    @rule(server=st.sampled_from(TARGETS), delay=st.floats(0.0, CMD_MAX))
    def the_active_steps_down(self, server: str, delay: float) -> None:
        """A planned stop of the active supervisor, just after a last command: it gives
        its lease up."""
        for i, slot in enumerate(self.slots):
            if slot.alive and slot.machine.mode is Mode.ACTIVE:
                self.send(i, server, delay)
                self.carry_out(i, slot.machine.stop(self.now))
                self.disturb()

    @rule()
    def all_healed(self) -> None:
        if any(s.cut for s in self.slots):
            for slot in self.slots:
                slot.cut = False
            self.disturb()

    def teardown(self) -> None:
        hosts = [i for _, i in sorted((t, i) for i, s in enumerate(self.slots) for t, _ in s.terms)]
        moves = sum(a != b for a, b in pairwise(hosts))
        event(f"take-overs by another host: {min(moves, 2)}{'+' if moves >= 2 else ''}")
        terms = sum(len(s.terms) for s in self.slots)
        event(f"terms: {min(terms, 4)}{'+' if terms >= 4 else ''}")
        event(f"commands accepted: {'some' if self.accepted else 'none'}")
        epochs = {e for _, e, _, _ in self.accepted}
        event(
            f"epochs with accepted commands: {min(len(epochs), 3)}{'+' if len(epochs) >= 3 else ''}"
        )
        event(f"lossy: {'yes' if self.lossy_sends else 'no'}")


# 170 examples in make test; HYPOTHESIS_SCALE=30 for a longer search (tests/helpers/examples.py).
Supervisors.TestCase.settings = settings(
    max_examples=examples(170),
    stateful_step_count=50,
    deadline=None,
)
test_the_supervisors_keep_the_invariants = Supervisors.TestCase
