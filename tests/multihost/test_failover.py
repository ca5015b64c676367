"""Failover across hosts on the network-namespace bed: the installation of
:mod:`tests.multihost.system` (a server and an agent on A and on B, the
supervisor, an agent and the proxy on C, PostgreSQL on D with its synchronous
standby on E, the clients on F), a writer and a proxy reader recording every
request, and the chaos checker judging the record.

- a server killed on its host: its agent reports the exit, a forced failover;
- the primary's host crashed: no proof, the backup takes the expired lease;
- the primary cut off from everything by iptables: it fences itself by its
  lease, the backup takes over, and it rejoins as backup once healed;
- the PostgreSQL primary killed and its standby promoted: the pair follows,
  nothing acknowledged is lost.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.chaos.checker import Fault, check
from tests.multihost.conftest import bed_or_skip
from tests.multihost.system import (
    ADDP_TIMEOUT,
    HOSTS,
    LEASE_TTL,
    MEMBERS,
    MultiHost,
    healthy,
    multi_host,
    primary_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHost]:
    """One installation for the module's tests (its set-up is the slow part): each
    test starts from a healthy pair, and the database failover comes last."""
    with bed_or_skip(HOSTS) as bed, multi_host(bed, tmp_path_factory.mktemp("mh")) as built:
        built.wait_acks(5, since=0.0)
        yield built


@pytest.fixture
def system(installation: MultiHost) -> MultiHost:
    """The installation, healthy and taking writes, its clients' record started afresh."""
    installation.wait_status(healthy, timeout=60)
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
    violations = check(record)
    assert violations == [], "\n".join(violations[:20]) + "\n" + system.log_tail()


def test_a_server_killed_on_its_host_is_failed_over_at_once(system: MultiHost) -> None:
    rows = system.wait_status(healthy)
    old = primary_of(rows)
    pid = system.server_pid(old)
    assert pid is not None
    fault = time.time()
    system.bed.kill(pid, signal.SIGKILL)
    died = system.wait_event(40301, since=fault)  # the agent's report: proof of death
    assert system.wait_event(40304, since=fault).at >= died.at
    acks = system.wait_acks(1, since=fault)
    assert acks[0].server != old
    _judge(system, [Fault("kill", old, fault, 0.0)])


def test_the_primarys_host_crashed_is_failed_over_by_the_lease(system: MultiHost) -> None:
    rows = system.wait_status(healthy)
    old = primary_of(rows)
    host = MEMBERS[old]
    fault = time.time()
    system.bed.crash(host)
    system.wait_event(40602, since=fault)  # its agent lost: no proof of anything
    system.wait_event(40305, since=fault)  # so the lease decides
    promoted = system.wait_event(40306, since=fault)
    assert not system.logged(40304, since=fault), "force-promoted without proof"
    assert promoted.at - fault <= LEASE_TTL + 2 * ADDP_TIMEOUT + 2.0
    system.wait_acks(1, since=promoted.at)
    system.bed.recover(host)  # the host boots again: its agent is started, as at boot
    system.start_agent(host)
    system.wait_status(lambda r: healthy(r) and r[old]["role"] == "backup", timeout=60)
    _judge(system, [Fault("crash", host, fault, time.time() - fault)])


def test_a_primary_cut_off_fences_itself_and_rejoins_as_backup(system: MultiHost) -> None:
    rows = system.wait_status(healthy)
    old = primary_of(rows)
    host = MEMBERS[old]
    fault = time.time()
    system.bed.isolate(host)
    promoted = system.wait_event(40306, since=fault, timeout=30)
    assert not system.logged(40304, since=fault), "force-promoted without proof"
    system.wait_acks(3, since=promoted.at)
    system.bed.heal_all()
    healed = time.time()
    system.wait_status(lambda r: healthy(r) and r[old]["role"] == "backup", timeout=60)
    _judge(system, [Fault("partition", host, fault, healed - fault)])


def test_a_database_failover_under_the_pair_loses_nothing(system: MultiHost) -> None:
    fault = time.time()
    system.pg.kill_primary()
    system.pg.promote_standby()
    system.wait_acks(3, since=time.time(), timeout=60)
    _judge(system, [Fault("kill", "postgres-D", fault, time.time() - fault)])


def test_the_supervisor_stopped_stops_every_hosts_servers(system: MultiHost) -> None:
    """Last: SIGINT to scs stops the servers of every host through their agents."""
    system.stop()
    assert system.scs is not None
    assert system.scs.returncode == 0
    assert [s for s in (*MEMBERS, "proxy") if system.server_pid(s) is not None] == []
