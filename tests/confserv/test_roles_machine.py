"""Role and lease logic under crashes, pauses, partitions and time (hypothesis, simulated clock).

Two :class:`~confserv.ha.roles.RoleMachine` instances drive the real lease and
write transactions (the SQL plans of :mod:`confserv.store.base`) on an in-memory
SQLite whose clock is the simulation's. Hypothesis chooses the schedule. The
invariants are those of ``docs/design.md``:

1. at most one server commits in a given epoch, and epochs only increase;
2. no write acknowledged is lost (every commit is in the database afterwards);
3. no promotion while the holder's lease is valid, except by force on proof of death;
4. a primary whose lease may have run out has stopped accepting writes
   (unless paused: then only the epoch check stands between it and the database).
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from confserv.ha.roles import Role, RoleMachine
from confserv.store.base import Lease
from confserv.wire.errors import FencedError

from ..helpers.simdb import SimDatabase

TTL, RENEW = 2.0, 0.5
NAMES = ("a", "b")


class Node:
    """One simulated server: its role machine and what the world does to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.machine = RoleMachine(name, ttl=TTL, renew=RENEW)
        self.crashed = False
        self.paused = False
        self.cut_off = False  # partitioned from the database


class PairSimulation(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.now = 0.0
        self.db = SimDatabase(TTL)
        self.nodes = {n: Node(n) for n in NAMES}
        self.commits: list[tuple[int, int, str]] = []  # (serial, epoch, writer)
        self.lease_epochs: list[int] = [0]
        self.forced_on_proof = 0
        for node in self.nodes.values():
            self.execute(node, node.machine.start())

    # -- the world ------------------------------------------------------------

    def set_clock(self, t: float) -> None:
        self.db.set_clock(t)

    def lease(self) -> Lease:
        return self.db.lease()

    def execute(self, node: Node, actions: list[Any]) -> None:
        self.db.execute(
            node.name,
            node.machine,
            actions,
            self.now,
            reachable=not node.cut_off,
            on_take=self._taken,
        )

    def _taken(self, name: str, before: Lease, taken: Lease, force: bool) -> None:
        # Invariant 3: a valid lease of another is only taken by force.
        if before.valid and before.holder != name:
            assert force, "promotion while the holder's lease was valid"
        self.lease_epochs.append(taken.epoch)

    def live(self, node: Node) -> bool:
        return not node.crashed and not node.paused

    # -- rules ----------------------------------------------------------------

    @rule(dt=st.floats(min_value=0.0, max_value=1.5))
    def time_passes(self, dt: float) -> None:
        """Time advances; every live node serves its deadlines in order."""
        end = self.now + dt
        while True:
            due = [
                (d, n)
                for n in self.nodes.values()
                if self.live(n) and (d := n.machine.next_deadline()) is not None and d <= end
            ]
            if not due:
                break
            deadline, node = min(due, key=lambda x: x[0])
            self.now = max(self.now, deadline)
            self.set_clock(self.now)
            self.execute(node, node.machine.tick(self.now))
        self.now = end
        self.set_clock(self.now)
        for name in NAMES:  # a client writes continuously to whoever accepts
            self.write(name)
        for node in self.nodes.values():
            other = self.nodes[NAMES[1] if node.name == NAMES[0] else NAMES[0]]
            if (
                self.live(node)
                and node.machine.role is Role.PRIMARY
                and self.live(other)
                and other.machine.role is Role.BACKUP
                and not other.cut_off
            ):
                node.machine.peer_ack(self.now)

    @rule(name=st.sampled_from(NAMES))
    def write(self, name: str) -> None:
        node = self.nodes[name]
        if node.crashed or node.cut_off or not node.machine.writable:
            return
        # A paused process cannot write; a resumed one may write before its timer runs.
        if node.paused:
            return
        try:
            change = self.db.commit_host(
                node.machine.epoch, f"h{len(self.commits)}-{name}-{self.now}"
            )
        except FencedError:
            return
        self.commits.append((change.serial, change.epoch, name))

    @rule(name=st.sampled_from(NAMES))
    def crash_and_restart(self, name: str) -> None:
        node = self.nodes[name]
        node.machine = RoleMachine(name, ttl=TTL, renew=RENEW)
        node.crashed, node.paused = False, False
        self.execute(node, node.machine.start())

    @rule(name=st.sampled_from(NAMES))
    def crash(self, name: str) -> None:
        self.nodes[name].crashed = True

    @rule(name=st.sampled_from(NAMES))
    def pause(self, name: str) -> None:
        self.nodes[name].paused = True

    @rule(name=st.sampled_from(NAMES))
    def resume(self, name: str) -> None:
        node = self.nodes[name]
        if node.paused:
            node.paused = False
            self.execute(node, node.machine.tick(self.now))

    @rule(name=st.sampled_from(NAMES))
    def toggle_partition(self, name: str) -> None:
        self.nodes[name].cut_off = not self.nodes[name].cut_off

    @rule(name=st.sampled_from(NAMES))
    def operator_promotes(self, name: str) -> None:
        node = self.nodes[name]
        if self.live(node):
            self.execute(node, node.machine.promote(force=False))

    @rule(name=st.sampled_from(NAMES))
    def supervisor_force_promotes_on_proof_of_death(self, name: str) -> None:
        node = self.nodes[name]
        other = self.nodes[NAMES[1] if name == NAMES[0] else NAMES[0]]
        if self.live(node) and other.crashed:
            self.forced_on_proof += 1
            self.execute(node, node.machine.promote(force=True))

    @precondition(lambda self: any(n.machine.role is Role.PRIMARY for n in self.nodes.values()))
    @rule(name=st.sampled_from(NAMES))
    def operator_demotes(self, name: str) -> None:
        node = self.nodes[name]
        if self.live(node):
            self.execute(node, node.machine.demote())

    # -- invariants -----------------------------------------------------------

    def teardown(self) -> None:
        if hasattr(
            self, "commits"
        ):  # coverage of the schedules, shown by --hypothesis-show-statistics
            event(f"epochs reached: {min(max(self.lease_epochs), 4)}+")
            event(f"commits: {'some' if self.commits else 'none'}")

    @invariant()
    def one_writer_per_epoch_and_epochs_only_increase(self) -> None:
        if not hasattr(self, "commits"):
            return
        writers: dict[int, str] = {}
        last_epoch = 0
        for _serial, epoch, writer in sorted(self.commits):
            assert writers.setdefault(epoch, writer) == writer, f"two writers in epoch {epoch}"
            assert epoch >= last_epoch, "a commit from an older epoch after a newer one"
            last_epoch = epoch
        assert self.lease_epochs == sorted(self.lease_epochs)

    @invariant()
    def no_acknowledged_write_is_lost(self) -> None:
        if not hasattr(self, "commits"):
            return
        assert len(self.db.stored_names()) == len(self.commits)

    @invariant()
    def a_writable_live_primary_holds_an_unexpired_lease(self) -> None:
        if not hasattr(self, "nodes"):
            return
        lease = self.lease()
        for node in self.nodes.values():
            m = node.machine
            if self.live(node) and m.writable and m.epoch == lease.epoch:
                assert lease.expires_at > self.now, "writable after the lease ran out"


PairSimulation.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestPairSimulation = PairSimulation.TestCase
