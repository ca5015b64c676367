"""The supervisor lease's rules as a state machine (hypothesis), on a simulated clock.

The store's own plans run on SQLite (``SqliteStore.run_sync``) with ``{now}``
read from a clock the test moves. Three supervisor processes (two share a
name: a second process of one supervisor) take, renew and release the lease
in any order; each call spends a random time on its way there and back. Each
supervisor reads its own clock, off the database's by a random offset of up to
an hour, and believes it is active until its clock, read *before* the call,
plus what the database said was left (``Lease.remaining``), less a margin:
it never compares its clock with ``expires_at``. A take or renewal may ask for
a shorter ttl than before: from the moment it sends one, a supervisor acts no
longer than that ttl (the lease may end sooner than it believed).

Invariants:

- the store answers as the model of the rules says: a take succeeds only when
  the lease is expired, unheld or the taker's own, a renewal only by the holder
  at its epoch (SupervisorFencedError otherwise), a release only by the holder;
- epochs strictly increase with each take (by one), and never go back;
- at most one supervisor believes it is active at any moment (no two beliefs
  overlap in time), and the one that does is the database's valid holder;
- the database's lease (servers) is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.store.base import Holder
from confserv.store.instance import Instance
from confserv.store.leases import (
    Lease,
    SupervisorFencedError,
    SupervisorLeaseHeldError,
    acquire_supervisor_lease_plan,
    read_lease_plan,
    read_supervisor_lease_plan,
    release_supervisor_lease_plan,
    renew_supervisor_lease_plan,
)
from confserv.store.schema import schema_plan
from confserv.store.sqlite import SqliteStore
from confserv.store.tables import ddl
from tests.helpers.examples import examples

#: How long before its reckoned end a supervisor stops acting (float rounding, nothing more).
MARGIN = 1e-6

NAMES = ("scs-a", "scs-b", "scs-a")  # the third: another process of scs-a
HOLDERS = tuple(
    Holder(name, Instance(id=f"i{n}", host=f"host{n}", pid=100 + n, start=1, port=4998))
    for n, name in enumerate(NAMES)
)

times = st.floats(0, 3, allow_nan=False)
ttls = st.floats(0.1, 2, allow_nan=False)
who = st.integers(0, len(HOLDERS) - 1)
epochs = st.sampled_from(["mine", "old", "read"])


@dataclass
class Belief:
    """What one supervisor believes: active at ``epoch`` until ``until`` (database time
    of the end, for the checker; the supervisor only knows it on its own clock)."""

    epoch: int
    since: float
    until: float


class SupervisorLeaseRules(RuleBasedStateMachine):
    @initialize(offsets=st.lists(st.floats(-3600, 3600), min_size=3, max_size=3))
    def start(self, offsets: list[float]) -> None:
        self.now = 1000.0  # the database clock
        self.offsets = offsets  # each supervisor's clock = database clock + its offset
        self.store = SqliteStore(":memory:", now_sql="test_now()")
        self.store._connect()
        conn = self.store._conn
        assert conn is not None
        conn.create_function("test_now", 0, lambda: self.now)
        self.store.run_sync(schema_plan(ddl("sqlite")))
        # The model of the row: epoch, holder (index into HOLDERS or None), expiry.
        self.epoch, self.expires = 0, 0.0
        self.holder: int | None = None
        self.known: list[int] = [0, 0, 0]  # each supervisor's last epoch taken
        self.beliefs: list[list[Belief]] = [[], [], []]  # every belief each one held

    def local(self, i: int) -> float:
        return self.now + self.offsets[i]

    def at(self, i: int, which: str) -> int:
        """The epoch ``i`` names: its own last one, an older one, or the one it read
        (another's, maybe: a confused or stale process)."""
        return {"mine": self.known[i], "old": self.known[i] - 1, "read": self.epoch}[which]

    def model_valid(self) -> bool:
        return self.holder is not None and self.expires > self.now

    def believe(self, i: int, epoch: int, sent_local: float, lease: Lease) -> None:
        """Supervisor ``i`` acts until its clock reads ``sent_local + remaining``."""
        until_local = sent_local + lease.remaining - MARGIN
        self.beliefs[i].append(Belief(epoch, self.now, until_local - self.offsets[i]))

    def stop_believing(self, i: int, after: float = 0.0) -> None:
        """Supervisor ``i`` acts no longer than ``after`` seconds from now."""
        for belief in self.beliefs[i]:
            belief.until = min(belief.until, self.now + after - MARGIN)

    def ask(self, i: int, ttl: float) -> float:
        """Supervisor ``i`` sends a take or a renewal for ``ttl``: the lease may end
        ``ttl`` from now (earlier than it believed: a shorter ttl), so it acts no longer
        than that; its clock as it sends."""
        self.stop_believing(i, ttl)
        return self.local(i)

    @rule(dt=times)
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(i=who, ttl=ttls, there=times, back=times)
    def take(self, i: int, ttl: float, there: float, back: float) -> None:
        sent = self.ask(i, ttl)
        self.now += there
        ours = self.holder == i
        try:
            lease = self.store.run_sync(acquire_supervisor_lease_plan(HOLDERS[i], ttl, NAMES[i]))
        except SupervisorLeaseHeldError as exc:
            assert self.model_valid()
            assert not ours
            assert self.holder is not None
            assert (exc.epoch, exc.holder) == (self.epoch, NAMES[self.holder])
            self.now += back
            return
        assert not self.model_valid() or ours, "taken while another's lease was valid"
        assert lease.epoch == self.epoch + 1, "a take raises the epoch by exactly one"
        assert lease.epoch > max(self.known)
        self.epoch, self.holder, self.expires = lease.epoch, i, self.now + ttl
        assert (lease.holder, lease.address, lease.expires_at) == (NAMES[i], NAMES[i], self.expires)
        self.known[i] = lease.epoch
        self.now += back
        self.believe(i, lease.epoch, sent, lease)

    @rule(i=who, ttl=ttls, there=times, back=times, at=epochs)
    def renew(self, i: int, ttl: float, there: float, back: float, at: str) -> None:
        epoch = self.at(i, at)
        sent = self.ask(i, ttl)
        self.now += there
        try:
            lease = self.store.run_sync(renew_supervisor_lease_plan(HOLDERS[i], epoch, ttl))
        except SupervisorFencedError:
            assert self.holder != i or self.epoch != epoch
            self.now += back
            self.stop_believing(i)  # told at once: it stops acting
            return
        assert (self.holder, self.epoch) == (i, epoch), "renewed when not the holder at epoch"
        self.expires = self.now + ttl
        assert (lease.epoch, lease.expires_at) == (epoch, self.expires)
        self.now += back
        self.believe(i, epoch, sent, lease)

    @rule(i=who, there=times, at=epochs)
    def release(self, i: int, there: float, at: str) -> None:
        epoch = self.at(i, at)
        self.stop_believing(i)  # stops acting before it sends the release
        self.now += there
        self.store.run_sync(release_supervisor_lease_plan(HOLDERS[i], epoch))
        if (self.holder, self.epoch) == (i, epoch):
            self.holder, self.expires = None, self.now

    @invariant()
    def the_database_says_what_the_model_says(self) -> None:
        if not hasattr(self, "store"):
            return
        lease = self.store.run_sync(read_supervisor_lease_plan())
        if lease is None:
            assert self.epoch == 0
        else:
            assert lease.epoch == self.epoch
            assert lease.valid is self.model_valid()
            if self.holder is not None:
                assert lease.holder_key == HOLDERS[self.holder].key
        server = self.store.run_sync(read_lease_plan())
        assert server is not None
        assert (server.epoch, server.holder) == (0, "")

    @invariant()
    def at_most_one_supervisor_believes_it_is_active(self) -> None:
        if not hasattr(self, "store"):
            return
        spans = [
            (b.since, b.until, i, b.epoch)
            for i, beliefs in enumerate(self.beliefs)
            for b in beliefs
            if b.until > b.since
        ]
        for start, end, i, e in spans:
            for other_start, other_end, j, f in spans:
                if i != j:
                    assert end <= other_start or other_end <= start, (
                        f"supervisors {i} (epoch {e}) and {j} (epoch {f}) both acted at once"
                    )
        active = [i for i, bs in enumerate(self.beliefs) if any(b.until > self.now for b in bs)]
        assert len(active) <= 1
        for i in active:
            assert self.holder == i
            assert self.model_valid()
            assert max(b.epoch for b in self.beliefs[i] if b.until > self.now) <= self.epoch

    def teardown(self) -> None:
        if hasattr(self, "store") and self.store._conn is not None:
            self.store._conn.close()


TestSupervisorLeaseRules = SupervisorLeaseRules.TestCase
TestSupervisorLeaseRules.settings = settings(
    max_examples=examples(200), stateful_step_count=40, deadline=None
)
