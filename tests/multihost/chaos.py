"""The multi-host chaos engine: seeded fault schedules on the namespace bed, judged by the checker.

``python -m tests.multihost.chaos --schedules 50 [--seed N] [--minutes M]``
(``make chaos`` runs it). Each schedule builds a fresh bed and installation
(:mod:`tests.multihost.system`), lets the writer and the proxy reader run,
inflicts a seeded :mod:`tests.multihost.faults` schedule (partitions both
ways and one way between any two hosts, a host's link down, a host crash, a
SIGSTOP or a SIGKILL of a server, an agent, the supervisor or the proxy) and,
in one schedule of three, a PostgreSQL failover (its primary killed, the
standby promoted, as Patroni would). What a real host would do by itself the
engine does too: a crashed host boots again with its agent (and, on C, the
supervisor), a killed agent or supervisor is started again (systemd's
``Restart=always``); servers are the supervisor's to restart.

Then everything is healed, the installation must be healthy again and take
writes, and the chaos checker judges the record: every request answered, no
acknowledged write missing (in the database too), one writer per epoch,
serials never going back, no failover from a fault shorter than its bound.
Besides, no server is ever seen running twice (sampled every 0.2 s). The
database hosts D and E are not crashed: a crashed synchronous standby stops
every commit until it returns, which is the database's manager's business;
the database failover is the fault injected there.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.checker import Fault as CheckedFault
from tests.chaos.checker import check
from tests.chaos.report import Summary, print_summary
from tests.multihost import faults
from tests.multihost.netns import TestBed
from tests.multihost.redundant import TwiceWatch
from tests.multihost.system import (
    ADDP_TIMEOUT,
    HOSTS,
    MEMBERS,
    PROXY_HOST,
    MultiHost,
    healthy,
    multi_host,
)

#: The processes a fault may name, by host.
ROLES = {
    "A": ["confserv", "lca-A"],
    "B": ["backup", "lca-B"],
    "C": ["scs", "lca-C", "proxy"],
    "D": [],
    "E": [],
}
#: A partition or a link down shorter than this must cause no failover: TCP's
#: retransmissions (from 200 ms, doubling) resume a link within ADDP's 2 s only
#: for a loss this short.
NET_BOUND = ADDP_TIMEOUT
#: Seconds of faults per schedule.
HORIZON = 12.0


@dataclass
class Outcome:
    """What one schedule produced."""

    seed: int
    violations: list[str] = field(default_factory=list)
    faults: list[CheckedFault] = field(default_factory=list)
    failovers: int = 0
    requests: int = 0
    acked: int = 0
    seconds: float = 0.0


def schedule(seed: int, horizon: float = HORIZON) -> faults.FaultSchedule:
    """The seed's faults: the generator's, without crashes of the database hosts."""
    drawn = faults.generate(seed, ROLES, horizon=horizon, duration=(0.3, 2.5))
    kept = tuple(f for f in drawn.faults if not (f.kind == "crash" and f.hosts & {"D", "E"}))
    return faults.FaultSchedule(drawn.seed, drawn.horizon, kept)


def _register(system: MultiHost) -> None:
    """Name the current pid of every process a fault may name."""
    bed = system.bed
    for section in (*MEMBERS, "proxy"):
        pid = system.server_pid(section)
        if pid is not None:
            bed.register(section, pid)
    for host, proc in system.agents.items():
        bed.register(f"lca-{host}", proc.pid)
    if system.scs is not None:
        bed.register("scs", system.scs.pid)


def _boot(system: MultiHost, host: str) -> None:
    """What a host starts at boot: its agent, and on C the supervisor."""
    if host in system.agents:
        system.start_agent(host)
    if host == PROXY_HOST:
        system.start_scs()


def _revive(system: MultiHost) -> None:
    """systemd's Restart=always for the agents and the supervisor (not the servers)."""
    for host, proc in list(system.agents.items()):
        if proc.poll() is not None and host not in system.bed.crashed():
            system.start_agent(host)
    scs = system.scs
    if scs is not None and scs.poll() is not None and PROXY_HOST not in system.bed.crashed():
        system.start_scs()


def _inflict(system: MultiHost, step: str, fault: faults.Fault) -> None:
    bed = system.bed
    if step == "apply":
        if fault.kind in ("pause", "kill"):
            _register(system)
        with contextlib.suppress(KeyError, ProcessLookupError):  # a process not running now
            faults.apply(bed, fault)
        return
    if fault.kind == "crash":
        bed.recover(fault.args[0])
        _boot(system, fault.args[0])
    elif fault.kind == "pause":
        with contextlib.suppress(KeyError, ProcessLookupError):
            faults.undo(bed, fault)
    elif fault.kind != "kill":
        faults.undo(bed, fault)


def _checked(fault: faults.Fault, start: float) -> CheckedFault:
    """The fault as the checker knows it (a network fault's bound: :data:`NET_BOUND`)."""
    target = "/".join(fault.args)
    kind = {"partition_one_way": "partition", "link_down": "partition"}.get(fault.kind, fault.kind)
    bound = NET_BOUND if kind == "partition" else None
    if fault.kind in ("crash", "kill"):
        bound = None  # meant to cause a failover (or nothing, for a process not serving)
    return CheckedFault(kind, target, start + fault.at, fault.duration, bound)


def one_schedule(bed: TestBed, tmp: Path, seed: int, horizon: float = HORIZON) -> Outcome:
    """Run the schedule of ``seed`` on a fresh installation; what the checker found."""
    started = time.monotonic()
    outcome = Outcome(seed)
    plan = schedule(seed, horizon)
    db_failover = seed % 3 == 0
    with multi_host(bed, tmp) as system, TwiceWatch(system) as twice:
        system.wait_acks(5, since=0.0)
        start = time.time()
        pg_at = horizon * random.Random(seed).uniform(0.2, 0.8) if db_failover else None
        for at, step, fault in faults.timeline(plan):
            if pg_at is not None and at >= pg_at:
                _pg_failover(system, outcome, start + pg_at)
                pg_at = None
            time.sleep(max(0.0, start + at - time.time()))
            _inflict(system, step, fault)
            _revive(system)
            if step == "apply":
                outcome.faults.append(_checked(fault, start))
        if pg_at is not None:
            _pg_failover(system, outcome, start + pg_at)
        bed.heal_all()
        for host in sorted(bed.crashed()):
            bed.recover(host)
            _boot(system, host)
        _revive(system)
        try:
            system.wait_status(healthy, timeout=90)
            healed = time.time()
            system.wait_acks(3, since=healed, timeout=60)
        except TimeoutError as exc:
            outcome.violations.append(f"never healthy and writing again: {exc}")
            healed = None
        system.stop_workload()
        record = system.record()
        record.faults = outcome.faults
        record.healed_at = healed
        outcome.violations += check(record)
        outcome.violations += twice.seen
        outcome.failovers = record.failovers
        outcome.requests = len(record.requests)
        outcome.acked = sum(r.op == "write" and r.outcome == "ok" for r in record.requests)
    outcome.seconds = time.monotonic() - started
    return outcome


def _pg_failover(system: MultiHost, outcome: Outcome, at: float) -> None:
    time.sleep(max(0.0, at - time.time()))
    system.pg.kill_primary()
    system.pg.promote_standby()
    outcome.faults.append(CheckedFault("kill", "postgres-D", at, time.time() - at))


@contextlib.contextmanager
def _fresh_bed() -> Iterator[TestBed]:
    with TestBed(HOSTS) as bed:
        yield bed


def run(schedules: int, seed: int, deadline: float) -> Summary:
    """Up to ``schedules`` schedules from ``seed`` on, stopping at ``deadline`` (monotonic)."""
    summary = Summary("multi-host", count_by="kind", timed_to="healthy")
    for n in range(schedules):
        if time.monotonic() > deadline:
            break
        with tempfile.TemporaryDirectory(prefix="mh-chaos-") as tmp, _fresh_bed() as bed:
            outcome = one_schedule(bed, Path(tmp), seed + n)
        summary.schedules += 1
        summary.seconds += outcome.seconds
        summary.failovers += outcome.failovers
        summary.requests += outcome.requests
        summary.acked += outcome.acked
        for f in outcome.faults:
            summary.faults[f.kind] = summary.faults.get(f.kind, 0) + 1
        replay = f"python -m tests.multihost.chaos --schedules 1 --seed {seed + n}"
        summary.violations += [f"{v}  (replay: {replay})" for v in outcome.violations]
        state = "clean" if not outcome.violations else f"{len(outcome.violations)} violations"
        print(f"schedule {seed + n}: {len(outcome.faults)} faults, {state}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the schedules and print the summary; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=40.0)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    print(f"multi-host chaos: first seed {seed}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    summary = run(args.schedules, seed, time.monotonic() + args.minutes * 60)
    print_summary([summary])
    for line in summary.violations[:50]:
        print(line)
    return 1 if summary.violations or summary.schedules == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
