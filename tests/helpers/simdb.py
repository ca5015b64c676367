"""The lease and write transactions on an in-memory SQLite whose clock a simulation sets.

Shared by the hypothesis simulation of the role logic and the chaos
simulation: it carries out a :class:`~confserv.ha.roles.RoleMachine`'s actions
with the real SQL plans, as :mod:`confserv.ha.pair` does with a real store.
"""

from __future__ import annotations

from collections.abc import Callable

from confserv.ha.roles import (
    Action,
    BecomeBackup,
    BecomePrimary,
    ReadLease,
    ReleaseLease,
    RenewLease,
    RoleMachine,
    StopWrites,
    TakeLease,
)
from confserv.store.base import Change, Holder, Lease, Write, commit_plan
from confserv.store.instance import Instance
from confserv.store.leases import (
    acquire_lease_plan,
    read_lease_plan,
    release_lease_plan,
    renew_lease_plan,
)
from confserv.store.schema import schema_plan
from confserv.store.sqlite import SqliteStore
from confserv.store.tables import ddl
from confserv.wire.errors import FencedError, LeaseHeldError


def sim_holder(name: str) -> Holder:
    """The one process of simulated server ``name``."""
    return Holder(name, Instance(id="sim", host="simulated", pid=1, start=None))


#: Called after every successful take: (taker, lease before, lease after, forced).
OnTake = Callable[[str, Lease, Lease, bool], None]


class SimDatabase:
    """One pair's Configuration Database with a settable clock."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.store = SqliteStore(":memory:", now_sql="(SELECT t FROM sim_clock)")
        self.store._connect()
        conn = self.store._conn
        assert conn is not None
        self.conn = conn
        conn.execute("CREATE TABLE sim_clock (t REAL)")
        conn.execute("INSERT INTO sim_clock VALUES (0)")
        self.store.run_sync(schema_plan(ddl("sqlite")))

    def set_clock(self, now: float) -> None:
        """The database clock reads ``now`` from here on."""
        self.conn.execute("UPDATE sim_clock SET t = ?", (now,))

    def lease(self) -> Lease:
        """The pair's lease."""
        lease: Lease = self.store.run_sync(read_lease_plan())
        return lease

    def commit_host(self, epoch: int, name: str) -> Change:
        """Commit a new Host under the epoch check (FencedError when deposed)."""
        write = Write("add", "Host", None, {"type": "Host", "name": name})
        [(serial,)] = self.conn.execute("SELECT value FROM cfg_counter WHERE name = 'serial'")
        change: Change = self.store.run_sync(commit_plan(epoch, int(serial), write))
        return change

    def stored_names(self) -> set[str]:
        """Names of every object in the database."""
        return {row[0] for row in self.conn.execute("SELECT name FROM cfg_object")}

    def execute(
        self,
        name: str,
        machine: RoleMachine,
        actions: list[Action],
        now: float,
        *,
        reachable: bool,
        on_take: OnTake,
    ) -> None:
        """Carry out ``actions`` (and those they lead to) for server ``name``.

        ``reachable`` False: the server is cut off from the database.
        """
        m = machine
        while actions:
            action = actions.pop(0)
            if isinstance(action, ReadLease):
                if not reachable:
                    actions += m.lease_read("", False)  # as confserv: cannot read, try to take
                    continue
                lease = self.lease()
                actions += m.lease_read(lease.holder, lease.valid)
            elif isinstance(action, TakeLease):
                if not reachable:
                    actions += m.lease_refused("")
                    continue
                before = self.lease()
                try:
                    taken = self.store.run_sync(
                        acquire_lease_plan(sim_holder(name), self.ttl, action.force, "")
                    )
                except LeaseHeldError as exc:
                    actions += m.lease_refused(exc.holder)
                    continue
                on_take(name, before, taken, action.force)
                actions += m.lease_taken(taken.epoch, now)
            elif isinstance(action, RenewLease):
                if not reachable:
                    actions += m.db_unreachable(now)
                    continue
                try:
                    self.store.run_sync(renew_lease_plan(sim_holder(name), action.epoch, self.ttl))
                except FencedError as exc:
                    actions += m.renew_fenced(action.epoch, str(exc))
                    continue
                actions += m.renewed(action.epoch, now, now)
            elif isinstance(action, ReleaseLease):
                if reachable:
                    self.store.run_sync(release_lease_plan(sim_holder(name), action.epoch))
            else:
                assert isinstance(action, (BecomePrimary, BecomeBackup, StopWrites))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
