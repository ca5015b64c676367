"""A deterministic simulation of a supervised pair: the real state machines, virtual time.

The real :class:`~confserv.ha.roles.RoleMachine` of each server, the real lease
and write transactions (the SQL plans of :mod:`confserv.store.base`, on an
in-memory SQLite whose clock is the simulation's), the real
:class:`~scs.core.SupervisorCore`, and the real ADDP
:class:`~addp.Keepalive` on each of the supervisor's links, driven by one
seeded random schedule of faults: kills, pauses, partitions between the
supervisor and a server, a server cut off from the database, the supervisor
killed, a server killed in the middle of its promotion. A client writes
throughout. :mod:`tests.chaos.checker` judges the record.

Run many: ``python -m tests.chaos.simulation --schedules 10000``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addp import Keepalive, PeerLost
from confserv.ha.roles import Role, RoleMachine
from confserv.store.base import Lease
from confserv.wire.errors import FencedError
from scs.config import load_scs_settings
from scs.core import Demote, Emit, Fence, Promote, Start, SupervisorCore

from ..helpers.simdb import SimDatabase
from .checker import Fault, Record, Request, check
from .report import Summary, print_summary

STEP = 0.05
TTL, RENEW = 4.0, 0.8  # the lease outlives ADDP detection (2 x ADDP_T): silence waits for it
ADDP_T = 1.0
HORIZON = 30.0
RESTART_DELAY = 0.3
NAMES = ("a", "b")

SCS_CONF = """[a]
port = 3000
server = b
management-port = 3001
management-secret = x
command = confserv -s a
failover-wait = 0
promote-retry = 0.1
restart-backoff = 0.3
[b]
port = 3010
server = a
management-port = 3011
management-secret = x
command = confserv -s b
failover-wait = 0
promote-retry = 0.1
restart-backoff = 0.3
"""


@dataclass
class Server:
    """One simulated confserv process."""

    name: str
    machine: RoleMachine
    alive: bool = True
    paused_until: float = 0.0
    db_cut_until: float = 0.0
    scs_cut_until: float = 0.0
    start_at: float | None = None
    kill_on_promote: bool = False

    def running(self, now: float) -> bool:
        return self.alive and now >= self.paused_until


@dataclass
class Link:
    """The supervisor's management link to one server."""

    up: bool = False
    keepalive: Keepalive | None = None
    role: str | None = None


@dataclass
class Simulation:
    """One schedule (see module docstring)."""

    seed: int
    now: float = 0.0
    record: Record = field(default_factory=Record)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.db = SimDatabase(TTL)
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "scs.conf"
            conf.write_text(SCS_CONF)
            self.settings = load_scs_settings(conf)
        self.servers = {n: Server(n, RoleMachine(n, ttl=TTL, renew=RENEW)) for n in NAMES}
        self.links = {n: Link() for n in NAMES}
        self.core: SupervisorCore | None = SupervisorCore(self.settings, random.Random(self.seed))
        self.scs_back_at: float | None = None
        self.writes = 0
        self.in_flight: list[tuple[float, Server, int, str, float]] = []
        self.record.detection_bound = ADDP_T
        self.record.settle = 2 * ADDP_T + TTL + RESTART_DELAY + 1.0
        self._plan_faults()

    # -- the schedule ---------------------------------------------------------------

    def _plan_faults(self) -> None:
        self.faults: list[Fault] = []
        for _ in range(self.rng.randint(1, 4)):
            kind = self.rng.choice(
                ["kill", "pause", "pause", "partition", "db-cut", "kill-scs", "kill-mid-promotion"]
            )
            start = self.rng.uniform(3.0, 20.0)
            duration = (
                0.0
                if kind in ("kill", "kill-mid-promotion")
                else self.rng.choice(
                    [self.rng.uniform(0.05, ADDP_T * 0.9), self.rng.uniform(ADDP_T, 5.0)]
                )
            )
            self.faults.append(Fault(kind, self.rng.choice(NAMES), start, duration))
        self.faults.sort(key=lambda f: f.start)
        self.record.faults = self.faults

    def _inject(self, fault: Fault) -> None:
        s = self.servers[fault.target]
        end = self.now + fault.duration
        if fault.kind == "kill":
            self._kill(s)
        elif fault.kind == "pause":
            s.paused_until = max(s.paused_until, end)
        elif fault.kind == "partition":
            s.scs_cut_until = max(s.scs_cut_until, end)
        elif fault.kind == "db-cut":
            s.db_cut_until = max(s.db_cut_until, end)
        elif fault.kind == "kill-scs":
            self.core = None
            self.scs_back_at = end
            for link in self.links.values():
                link.up, link.keepalive, link.role = False, None, None
        elif fault.kind == "kill-mid-promotion":
            s.kill_on_promote = True

    def _kill(self, s: Server) -> None:
        if not s.alive:
            return
        s.alive = False
        s.paused_until = 0.0
        if self.core is not None:
            self._carry_out(self.core.process_exited(s.name, 1, "killed by SIGKILL", self.now))
        else:
            s.start_at = None  # nobody restarts it until the supervisor is back

    # -- the servers ----------------------------------------------------------------

    def _db_ok(self, s: Server) -> bool:
        return self.now >= s.db_cut_until

    def _execute(self, s: Server, actions: list[Any]) -> None:
        self.db.execute(
            s.name, s.machine, actions, self.now, reachable=self._db_ok(s), on_take=self._taken
        )

    def _taken(self, name: str, before: Lease, taken: Lease, force: bool) -> None:
        if before.valid and before.holder and before.holder != name:
            holder = self.servers[before.holder]
            if not force or holder.alive:  # checked by run_schedule
                self.record.faults.append(Fault("VIOLATION", before.holder, self.now, 0))
        self.record.promotions.append((self.now, taken.epoch, name))

    def _role(self, s: Server) -> str:
        return {Role.PRIMARY: "primary", Role.BACKUP: "backup"}.get(s.machine.role, "starting")

    def _status(self, s: Server) -> dict[str, Any]:
        return {"role": self._role(s), "epoch": s.machine.epoch, "pid": 1}

    # -- the supervisor -------------------------------------------------------------

    def _carry_out(self, actions: list[Any]) -> None:
        core = self.core
        if core is None:
            return
        for action in actions:
            if isinstance(action, Emit):
                continue
            if isinstance(action, Fence):
                self._kill(self.servers[action.server])
                continue
            if isinstance(action, Start):
                s = self.servers[action.server]
                if not s.alive and s.start_at is None:
                    s.start_at = self.now + RESTART_DELAY
            elif isinstance(action, Promote):
                s = self.servers[action.server]
                if s.kill_on_promote:
                    s.kill_on_promote = False
                    self._kill(s)  # the crash in the middle of a promotion
                    self._carry_out(core.promote_done(s.name, None, "connection lost", self.now))
                elif s.running(self.now) and self.now >= s.scs_cut_until:
                    self._execute(s, s.machine.promote(force=action.force))
                    ok = s.machine.role is Role.PRIMARY
                    result = self._status(s) if ok else None
                    self._carry_out(core.promote_done(s.name, result, "lease-held", self.now))
                else:
                    self._carry_out(core.promote_done(s.name, None, "unreachable", self.now))
            elif isinstance(action, Demote):
                s = self.servers[action.server]
                self._execute(s, s.machine.demote())
                self._carry_out(core.demote_done(s.name, True, "", self.now))

    def _links(self) -> None:
        core = self.core
        if core is None:
            return
        for name, s in self.servers.items():
            link = self.links[name]
            reachable = s.running(self.now) and self.now >= s.scs_cut_until
            if not link.up:
                if s.alive and reachable:
                    link.up, link.role = True, self._role(s)
                    link.keepalive = Keepalive(ADDP_T, self.now)
                    self._carry_out(core.link_up(name, self._status(s), self.now))
                continue
            assert link.keepalive is not None
            if not s.alive:
                link.up = False
                self._carry_out(core.link_lost(name, "closed", self.now))
                continue
            if reachable:
                link.keepalive.bytes_received(self.now)
                role = self._role(s)
                if role != link.role:
                    link.role = role
                    self._carry_out(core.role_seen(name, self._status(s), self.now))
            elif isinstance(link.keepalive.handle_timeout(self.now), PeerLost):
                link.up = False
                self._carry_out(core.link_lost(name, "ADDP timeout", self.now))

    # -- the client -----------------------------------------------------------------

    def _client_write(self) -> None:
        """A client sends a write to a server that accepts writes now; it commits a
        little later, after a pause of that server if one comes in between (the
        write in flight is what the epoch check must catch)."""
        key = f"k{self.writes}"
        self.writes += 1
        for s in self.rng.sample(list(self.servers.values()), 2):
            if s.running(self.now) and s.machine.writable:
                due = self.now + self.rng.uniform(0.0, 0.3)
                self.in_flight.append((due, s, s.machine.epoch, key, self.now))
                return

    def _commit_due_writes(self) -> None:
        still: list[tuple[float, Server, int, str, float]] = []
        for item in self.in_flight:
            due, s, epoch, key, start = item
            if not s.alive:  # the server died with the write in flight: outcome unknown
                self.record.requests.append(
                    Request("c", "write", start, self.now, "unknown", key=key)
                )
                continue
            if due > self.now or not s.running(self.now):
                still.append(item)
                continue
            if not self._db_ok(s):
                self.record.requests.append(
                    Request("c", "write", start, self.now, "error", key=key)
                )
                continue
            try:
                change = self.db.commit_host(epoch, key)
            except FencedError:
                self.record.requests.append(
                    Request("c", "write", start, self.now, "error", key=key)
                )
                continue
            self.record.requests.append(
                Request(
                    "c", "write", start, self.now, "ok", change.serial, change.epoch, s.name, key
                )
            )
        self.in_flight = still

    # -- the loop -------------------------------------------------------------------

    def set_clock(self) -> None:
        self.db.set_clock(self.now)

    def run(self) -> Record:
        """Play the schedule to the horizon and return what happened."""
        assert self.core is not None
        self._carry_out(self.core.start(self.now))
        for s in self.servers.values():
            self._carry_out(self.core.process_started(s.name, 1, self.now))
            self._execute(s, s.machine.start())
        pending = list(self.faults)
        while self.now < HORIZON:
            self.now = round(self.now + STEP, 6)
            self.set_clock()
            while pending and pending[0].start <= self.now:
                self._inject(pending.pop(0))
            if self.core is None and self.scs_back_at is not None and self.now >= self.scs_back_at:
                self.core = SupervisorCore(self.settings, random.Random(self.seed + 1))
                for s in self.servers.values():
                    if s.alive:
                        self.core.process_started(s.name, 1, self.now)
                    else:
                        self._carry_out(self.core.process_exited(s.name, 1, "found dead", self.now))
            for s in self.servers.values():
                if not s.alive and s.start_at is not None and self.now >= s.start_at:
                    s.alive, s.start_at = True, None
                    s.machine = RoleMachine(s.name, ttl=TTL, renew=RENEW)
                    self._execute(s, s.machine.start())
                    if self.core is not None:
                        self._carry_out(self.core.process_started(s.name, 1, self.now))
                elif s.running(self.now):
                    deadline = s.machine.next_deadline()
                    if deadline is not None and deadline <= self.now:
                        self._execute(s, s.machine.tick(self.now))
            self._links()
            if self.core is not None:
                deadline = self.core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    self._carry_out(self.core.tick(self.now))
            if self.rng.random() < 0.3:
                self._client_write()
            self._commit_due_writes()
        self.record.committed = self.db.stored_names()
        self.db.close()
        return self.record


def run_schedule(seed: int) -> tuple[Record, list[str]]:
    """Play one seeded schedule; its record and violations."""
    record = Simulation(seed).run()
    violations = check(record)
    violations += [
        f"promotion while the holder '{f.target}' held a valid lease, without proof of death"
        for f in record.faults
        if f.kind == "VIOLATION"
    ]
    return record, violations


def failover_times(record: Record) -> dict[str, list[float]]:
    """Per fault kind: virtual seconds from a fault to the next promotion.

    Only when that promotion comes before the next fault (otherwise the next
    fault may be its cause) and after a fault that can cause one.
    """
    starts = sorted(f.start for f in record.faults)
    times: dict[str, list[float]] = {}
    for fault in record.faults:
        if fault.kind not in ("kill", "kill-mid-promotion", "pause", "db-cut", "partition"):
            continue
        later = [t for t in starts if t > fault.start]
        after = [t for t, _e, _s in record.promotions if t > fault.start]
        if after and (not later or after[0] < later[0]):
            label = fault.kind if fault.duration == 0 else f"{fault.kind} >= {ADDP_T:g} s"
            times.setdefault(label, []).append(after[0] - fault.start)
    return times


def run_many(schedules: int, seed: int = 1) -> Summary:
    """Play ``schedules`` seeded schedules from ``seed``; what they found."""
    summary = Summary("simulation", timed_to="promotion (virtual time)", count_by="kind")
    started = time.perf_counter()
    for s in range(seed, seed + schedules):
        record, violations = run_schedule(s)
        replay = f"python -m tests.chaos.simulation --seed {s} --schedules 1"
        summary.add(record, [f"seed {s}: {v}" for v in violations], failover_times(record), replay)
    summary.seconds = time.perf_counter() - started
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run many schedules and print a summary; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    args = parser.parse_args(argv)
    summary = run_many(args.schedules, args.seed)
    print_summary([summary])
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())
