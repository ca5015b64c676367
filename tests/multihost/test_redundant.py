"""Two supervisors on the multi-host bed (issue 14): one active, one standby, real faults.

The redundant installation of :mod:`tests.multihost.system`: the pair on A
and B, the proxy and an agent on C, PostgreSQL on D with its synchronous
standby on E, the clients on F, and a supervisor on G (``scs-G``, started
first: active) and one on H (``scs-H``: standby), both with
``[scs] database = scsdb`` on the bed's PostgreSQL, supervisor-lease-ttl 3 s,
renew 1 s, retry 0.5 s. Faults are real: a host crash (every process
SIGSTOPped, its veth deleted, all SIGKILLed), SIGKILL, iptables DROP.

- while the active is healthy the standby stays standby, and both list it;
- the active's host crashes as the primary is SIGKILLed: the standby takes
  the lease, adopts the servers and finishes the failover; the outage (fault
  to the first write acknowledged at a newer epoch) stays within the
  supervisor lease's take-over bound plus the usual failover bound;
- the active cut off from the database and the agents: it stops acting
  before its lease can run out (the lease row's own expiry), the standby
  takes over adopting everything (nothing started), and once healed every
  supervisor epoch's commands came from one supervisor host, no target
  admitted an older epoch after a newer one, no server ran twice;
- last, PostgreSQL fails over (its primary killed, the standby promoted)
  under both: the active supervisor stays active at its epoch.

Each test ends with the chaos checker on the clients' record (every request
answered, nothing acknowledged lost, one writer per epoch).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.chaos.checker import Fault, check
from tests.multihost.conftest import bed_or_skip
from tests.multihost.redundant import (
    FAILOVER_BOUND,
    TAKEOVER_BOUND,
    TwiceWatch,
    admissions,
    boot_supervisor,
    check_admissions,
    supervisor,
    supervisor_lease,
    switchover,
    wait_mode,
)
from tests.multihost.system import (
    REDUNDANT_HOSTS,
    SUPERVISOR_HOSTS,
    SUPERVISOR_TTL,
    MultiHost,
    healthy,
    multi_host,
    primary_of,
)

# Run by .ci/run and make chaos (marker chaos_slice), not by make test: 70-180 s of the
# bed would take make test past its 5 minutes.
pytestmark = [pytest.mark.integration, pytest.mark.chaos_slice]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHost]:
    """The redundant installation, scs-G active and scs-H standby, taking writes."""
    with (
        bed_or_skip(REDUNDANT_HOSTS) as bed,
        multi_host(bed, tmp_path_factory.mktemp("mhr"), supervisors=SUPERVISOR_HOSTS) as built,
        TwiceWatch(built) as twice,
    ):
        wait_mode(built, SUPERVISOR_HOSTS[1], "standby")
        built.wait_acks(5, since=0.0)
        yield built
        assert twice.seen == [], twice.seen


@pytest.fixture
def system(installation: MultiHost) -> MultiHost:
    """The installation, healthy under an active supervisor with a standby, taking
    writes, its clients' record started afresh."""
    installation.wait_status(healthy, timeout=60)
    active = installation.active_host()
    assert active is not None
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    wait_mode(installation, standby, "standby")
    installation.restart_workload()
    installation.wait_acks(3, since=time.time())
    return installation


def _judge(system: MultiHost, faults: list[Fault]) -> None:
    system.wait_status(healthy, timeout=60)
    healed = time.time()
    system.wait_acks(3, since=healed)
    system.stop_workload()
    record = system.record()
    record.faults = faults
    record.healed_at = healed
    violations = check(record) + check_admissions(admissions(system))
    assert violations == [], "\n".join(violations[:20]) + "\n" + system.log_tail()


def _newest_epoch(system: MultiHost) -> int:
    return max((r.epoch or 0) for r in system.requests() if r.op == "write" and r.outcome == "ok")


def test_the_standby_stays_standby_while_the_active_is_healthy(system: MultiHost) -> None:
    active = system.active_host()
    assert active is not None
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    since = time.time()
    time.sleep(2 * SUPERVISOR_TTL)  # two whole leases: renewed, never taken
    info, other = supervisor(system, active), supervisor(system, standby)
    assert info["mode"] == "active"
    assert info["acting"]
    assert info["name"] == f"scs-{active}"
    assert other["mode"] == "standby"
    assert not other["acting"]
    assert other["active"]["name"] == f"scs-{active}"
    assert other["active"]["epoch"] == info["epoch"]
    listed = {s["name"]: s["mode"] for s in info["supervisors"]}
    assert listed == {f"scs-{active}": "active", f"scs-{standby}": "standby"}
    assert not system.logged(40701, since, host=standby), system.log_tail()
    assert not system.logged(40703, since, host=active), system.log_tail()
    # The standby shows what its links see: every server, as the active does.
    assert set(system.status(standby)) == set(system.status(active))


def test_the_standby_finishes_a_failover_when_the_actives_host_crashes(
    system: MultiHost,
) -> None:
    active = system.active_host()
    assert active is not None
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    rows = system.wait_status(healthy)
    old = primary_of(rows)
    epoch = _newest_epoch(system)
    old_supervisor = supervisor(system, active)["epoch"]
    pid = system.server_pid(old)
    assert pid is not None
    fault = time.time()
    system.bed.crash(active)  # silent: stopped, veth gone, SIGKILLed
    system.bed.kill(pid, signal.SIGKILL)
    injected = time.time() - fault
    took = system.wait_event(40701, since=fault, timeout=TAKEOVER_BOUND + 10, host=standby)
    assert str(old_supervisor + 1) in took.text
    assert took.at - fault <= TAKEOVER_BOUND, f"standby active {took.at - fault:.2f} s late"

    def first_ack() -> float | None:
        later = [
            r.end
            for r in system.requests()
            if r.op == "write" and r.outcome == "ok" and (r.epoch or 0) > epoch and r.end > fault
        ]
        return min(later) if later else None

    deadline = time.monotonic() + 30
    while (acked := first_ack()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert acked is not None, f"no write at an epoch after {epoch}\n{system.log_tail()}"
    outage = acked - fault
    bound = TAKEOVER_BOUND + FAILOVER_BOUND
    assert outage <= bound, f"outage {outage:.2f} s > {bound:.2f} s\n{system.log_tail()}"
    print(f"\ntake-over {took.at - fault:.3f} s, outage {outage:.3f} s, injecting {injected:.3f} s")
    # A primary at a newer epoch: the backup promoted, or the killed one restarted by
    # the new active that took the expired lease first; either is a failover.
    system.wait_status(lambda r: healthy(r) and int(r[primary_of(r)]["epoch"]) > epoch, timeout=60)
    system.bed.recover(active)
    boot_supervisor(system, active)
    wait_mode(system, active, "standby")
    assert wait_mode(system, standby, "active")["epoch"] == old_supervisor + 1
    _judge(
        system,
        [Fault("crash", f"scs-{active}", fault, time.time() - fault), Fault("kill", old, fault, 0)],
    )


def test_an_active_cut_off_stops_acting_and_the_standby_takes_over(system: MultiHost) -> None:
    active = system.active_host()
    assert active is not None
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    old_epoch = supervisor(system, active)["epoch"]
    switchover(system, active)  # role commands at the old supervisor epoch
    rows = system.wait_status(healthy)
    pids = {s: system.server_pid(s) for s in rows}
    fault = time.time()
    for host in ("A", "B", "C", "D", "E"):  # the agents' and the database's hosts
        system.bed.partition(active, host)
    time.sleep(0.3)  # a renewal in flight lands or is lost by now
    lease = supervisor_lease(system)
    assert lease["holder"] == f"scs-{active}"
    assert lease["epoch"] == old_epoch
    stopped = system.wait_event(40703, since=fault, timeout=SUPERVISOR_TTL + 5, host=active)
    took = system.wait_event(40701, since=fault, timeout=TAKEOVER_BOUND + 10, host=standby)
    # It stopped acting before its lease could run out on the database, and the
    # standby took it only after that.
    assert stopped.at < lease["expires_at"], (stopped, lease)
    assert took.at >= lease["expires_at"] - 0.001, (took, lease)
    assert took.at - fault <= TAKEOVER_BOUND
    assert wait_mode(system, standby, "active")["epoch"] == old_epoch + 1
    # Adopted, nothing started: every server is the same process.
    after = system.wait_status(healthy, timeout=30)
    assert {s: system.server_pid(s) for s in after} == pids
    assert not system.logged(40101, since=fault), system.log_tail()
    assert not system.logged(40306, since=fault), "a healthy pair was failed over"
    switchover(system, standby)  # and at the new one, while the old active is cut off
    system.bed.heal_all()
    healed = time.time()
    wait_mode(system, active, "standby", timeout=30)
    assert not system.logged(40701, since=healed, host=active)
    _judge(system, [Fault("partition", f"scs-{active}", fault, healed - fault)])
    assert {s: system.server_pid(s) for s in rows} == pids
    # The checker had something to judge: the servers admitted role commands at both
    # epochs, each from its own supervisor's host.
    by_epoch = {(a.epoch, a.peer) for a in admissions(system) if a.target.startswith("server ")}
    assert (old_epoch, system.bed.address(active)) in by_epoch, by_epoch
    assert (old_epoch + 1, system.bed.address(standby)) in by_epoch, by_epoch


def test_a_database_failover_leaves_the_active_supervisor_active(system: MultiHost) -> None:
    """Last (PostgreSQL stays on E): the supervisor lease's database fails over under
    both supervisors; the active one's renewals reach the promoted standby in time."""
    active = system.active_host()
    assert active is not None
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    epoch = supervisor(system, active)["epoch"]
    fault = time.time()
    system.pg.kill_primary()
    system.pg.promote_standby()
    system.wait_acks(3, since=time.time(), timeout=60)
    time.sleep(SUPERVISOR_TTL)  # a whole lease after the failover
    assert not system.logged(40703, since=fault, host=active), system.log_tail()
    assert not system.logged(40701, since=fault, host=standby), system.log_tail()
    info = wait_mode(system, active, "active")
    assert info["epoch"] == epoch
    assert supervisor_lease(system)["holder"] == f"scs-{active}"
    _judge(system, [Fault("kill", "postgres-D", fault, time.time() - fault)])


# -- the admissions checker itself (no bed needed) -------------------------------------


def test_the_admissions_checker_reads_both_logs_and_finds_each_violation(tmp_path: Path) -> None:
    for host in ("A", "B", "C"):
        (tmp_path / host).mkdir()
    (tmp_path / "A" / "confserv.log").write_text(
        "2026-12-02 10:00:00.000 Std 20125 Management command 'switch-to-backup' "
        "from 198.18.0.7:4000 "
        "admitted at supervisor epoch 3\n"
        "2026-12-02 10:00:01.000 Std 20125 Management command 'switch-to-primary' "
        "from 198.18.0.8:4001 "
        "admitted at supervisor epoch 3\n"  # epoch 3 from a second supervisor host
        "2026-12-02 10:00:02.000 Std 20125 Management command 'switch-to-backup' "
        "from 198.18.0.8:4001 "
        "admitted at supervisor epoch 4\n"
    )
    (tmp_path / "lca-B.log").write_text(
        "2026-12-02 10:00:00.500 start of backup from 198.18.0.8:5000 "
        "admitted at supervisor epoch 4\n"
        "2026-12-02 10:00:03.000 stop of backup from 198.18.0.7:5001 "
        "admitted at supervisor epoch 3\n"
    )
    system = cast("MultiHost", SimpleNamespace(tmp=tmp_path, agents={"B": None}))
    found = admissions(system)
    assert [(a.target, a.peer, a.epoch) for a in found] == [
        ("server confserv", "198.18.0.7", 3),
        ("server confserv", "198.18.0.8", 3),
        ("server confserv", "198.18.0.8", 4),
        ("agent B", "198.18.0.8", 4),
        ("agent B", "198.18.0.7", 3),
    ]
    violations = check_admissions(found)
    assert len(violations) == 2, violations
    assert "supervisor epoch 3: commands admitted from 2 supervisor hosts" in violations[0]
    assert "agent B admitted 'stop backup' from 198.18.0.7 at supervisor epoch 3" in violations[1]
    # One supervisor per epoch, epochs rising at every target: nothing to report.
    assert check_admissions([found[0], found[2], found[3]]) == []
