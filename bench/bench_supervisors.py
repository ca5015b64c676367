"""Redundant supervisors across hosts (issue 14): the active one's host crashed, alone or not.

The redundant installation of :mod:`tests.multihost.system` on the
network-namespace bed: the pair's members on hosts A and B and the proxy on
C, each started by its host's agent, PostgreSQL on D with a synchronous
standby on E, the writer and the proxy reader on F, and two supervisors on
hosts of their own, ``scs-G`` and ``scs-H``, with ``[scs] database`` on the
bed's PostgreSQL: one active, the other standby. Supervisor lease ttl 3 s,
renewed every 1 s, a standby looking every 0.5 s; the servers' lease-ttl
2 s, ADDP timeout 1 s on every link. Two kinds of fault, 10 runs each
(``RUNS``), always on the active supervisor's host (``TestBed.crash``: every
process stopped, its veth deleted, all SIGKILLed: silent):

- the host crashed alone: measured from ``time.time()`` just before the crash
  to the standby's 40701 line ("took the supervisor lease ... active"); the
  servers must be adopted (no 40101 "started" line) and the pair not failed
  over. Target median <= supervisor-lease-ttl + supervisor-lease-retry (the
  lease runs out at most ttl after its last renewal, sent before the crash;
  the standby's next look takes it);

- the host crashed and the pair's primary SIGKILLed at the same moment:
  measured to the end of the first write the writer had acknowledged at an
  epoch newer than any before the fault (by the backup promoted, or by the
  killed one restarted by the new active, which took the expired lease
  first). Target median <= that take-over bound + lease-ttl + 2 x
  addp-timeout + 300 ms (the bed's usual failover bound without proof of
  death, bench_multihost's).

After each run the crashed host boots again (``TestBed.recover``) with its
supervisor, which must come back standby, and the next run starts once the
installation is healthy and the writer writes. Runs where namespaces cannot
be made (not root, no ``ip`` or ``iptables``) or PostgreSQL is missing are
skipped with a note. ``BENCH_KEEP_LOGS=1`` keeps the folder of the logs (printed).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from bench.bench_multihost import installation
from confserv.logs.handlers import stamp
from tests.helpers.stats import median, percentile
from tests.multihost.redundant import (
    FAILOVER_BOUND,
    boot_supervisor,
    supervisor,
    wait_mode,
)
from tests.multihost.system import (
    ADDP_TIMEOUT,
    LEASE_TTL,
    REDUNDANT_HOSTS,
    SUPERVISOR_HOSTS,
    SUPERVISOR_RENEW,
    SUPERVISOR_RETRY,
    SUPERVISOR_TTL,
    MultiHost,
    healthy,
    primary_of,
)

RUNS = 10
QUICK = {"RUNS": 1}
WARNING = "eight hosts' processes and PostgreSQL share the cores: take-overs slow down"
#: The targets, in seconds: the standby active; the pair's first write after both faults.
TAKEOVER_TARGET = SUPERVISOR_TTL + SUPERVISOR_RETRY
WRITE_TARGET = TAKEOVER_TARGET + FAILOVER_BOUND
#: Seconds a run may take (then it counts as never), and to heal.
RUN_TIMEOUT, HEAL_TIMEOUT = 30.0, 120.0
#: The workload stops by itself after 600 s; it is restarted, between runs, before that.
WORKLOAD_AGE = 400.0

KINDS = {
    "alone": "active supervisor's host crashed",
    "primary": "active supervisor's host crashed + primary SIGKILLed",
}


@dataclass(frozen=True, slots=True)
class Run:
    """One fault's figures, in seconds from the fault (``inf``: never)."""

    kind: str
    host: str  # the crashed supervisor's
    fault: float  # time.time() just before the fault
    takeover: float  # to the standby's 40701
    write: float  # to the first write acknowledged at a newer epoch (kind "primary")
    started: int  # 40101 lines of the new active after the fault (kind "alone": 0)
    promoted: int  # 40306 lines after the fault (kind "alone": 0)
    inject: float


def _newest_epoch(system: MultiHost, since: float) -> int:
    acks = [r for r in system.requests() if r.op == "write" and r.outcome == "ok"]
    if not any(r.start >= since for r in acks):
        raise TimeoutError("no write acknowledged since the installation was healthy")
    return max((r.epoch or 0) for r in acks)


def _settled(system: MultiHost, started: list[float]) -> tuple[str, str, int]:
    """Healthy, one supervisor active and the other standby, the writer writing;
    (the active's host, the standby's, the newest epoch acknowledged)."""
    system.wait_status(healthy, timeout=HEAL_TIMEOUT)
    if time.time() - started[0] > WORKLOAD_AGE:
        system.restart_workload()
        started[0] = time.time()
    active = system.active_host()
    if active is None:
        raise TimeoutError("no supervisor active")
    standby = next(h for h in SUPERVISOR_HOSTS if h != active)
    wait_mode(system, standby, "standby", timeout=HEAL_TIMEOUT)
    since = time.time()
    system.wait_acks(5, since=since, timeout=RUN_TIMEOUT)
    return active, standby, _newest_epoch(system, since)


def _first_write(system: MultiHost, fault: float, epoch: int) -> float:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        later = [
            r.end
            for r in system.requests()
            if r.op == "write" and r.outcome == "ok" and (r.epoch or 0) > epoch and r.end > fault
        ]
        if later:
            return min(later) - fault
        time.sleep(0.02)
    return math.inf


def _one(system: MultiHost, kind: str, started: list[float]) -> Run:
    active, standby, epoch = _settled(system, started)
    pid = system.server_pid(primary_of(system.status())) if kind == "primary" else None
    fault = time.time()
    system.bed.crash(active)
    if pid is not None:
        system.bed.kill(pid, signal.SIGKILL)
    inject = time.time() - fault
    takeover = math.inf
    with contextlib.suppress(TimeoutError):
        takeover = system.wait_event(40701, since=fault, timeout=RUN_TIMEOUT, host=standby).at
        takeover -= fault
    write = _first_write(system, fault, epoch) if kind == "primary" else math.nan
    if kind == "alone":
        time.sleep(1.0)  # the new active's adoptions logged
    started_lines = len(system.logged(40101, since=fault, host=standby))
    promoted = len(system.logged(40306, since=fault))
    system.bed.recover(active)  # the host boots again, with its supervisor
    boot_supervisor(system, active)
    return Run(kind, active, fault, takeover, write, started_lines, promoted, inject)


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else "-" if math.isnan(value) else f"{value * 1000:.0f}"


def _clock(at: float) -> str:
    return stamp(at, date=False)


def _runs(system: MultiHost) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    started = [time.time()]
    for n, (kind, label) in enumerate(KINDS.items(), 1):
        print(f"[{n}] {label}, {RUNS} runs", flush=True)
        out[kind] = []
        for i in range(RUNS):
            run = _one(system, kind, started)
            out[kind].append(run)
            print(
                f"    run {i + 1} (scs-{run.host} at {_clock(run.fault)}): standby active "
                f"(40701) {_ms(run.takeover)} ms; first write at a newer epoch "
                f"{_ms(run.write)} ms; servers started by the new active {run.started}, "
                f"promotions {run.promoted}; injecting took {_ms(run.inject)} ms",
                flush=True,
            )
    return out


def _list(values: list[float]) -> str:
    return ", ".join(_ms(v) for v in values) + " ms"


def _settings() -> str:
    return (
        f"supervisor-lease-ttl {SUPERVISOR_TTL:g} s, -renew {SUPERVISOR_RENEW:g} s, "
        f"-retry {SUPERVISOR_RETRY:g} s; lease-ttl {LEASE_TTL:g} s; "
        f"addp-timeout {ADDP_TIMEOUT:g} s"
    )


def _figures(name: str, times: list[float], target: float, why: str, more: str) -> list[Result]:
    times = sorted(times)
    p50, p90, worst = median(times), percentile(times, 90), max(times)
    return [
        figure(
            f"{name}, median",
            p50 * 1000,
            "ms",
            f"<= {target * 1000:.0f} ms ({why})",
            p50 <= target,
            f"{len(times)} runs; p90 {_ms(p90)} ms, max {_ms(worst)} ms; sorted: "
            f"{_list(times)}; {more}; {_settings()}",
        ),
        figure(f"{name}, p90", p90 * 1000, "ms", notes="nearest rank over the same runs"),
        figure(f"{name}, max", worst * 1000, "ms", notes="the worst run"),
    ]


def _ready(built: MultiHost) -> None:
    """The installation settled: the second supervisor standby, the clients writing."""
    wait_mode(built, SUPERVISOR_HOSTS[1], "standby")
    built.wait_acks(5, since=0.0)


def _installation() -> contextlib.AbstractContextManager[MultiHost | str]:
    """The redundant installation, or why it cannot be built here."""
    return installation(REDUNDANT_HOSTS, "bench-supervisors-", _ready, supervisors=SUPERVISOR_HOSTS)


def bench_supervisors() -> list[Result | Plot]:
    """:data:`RUNS` crashes of the active supervisor's host, alone and with the primary."""
    with _installation() as system:
        if isinstance(system, str):
            return [figure("redundant supervisors", math.nan, "", notes=f"skipped: {system}")]
        runs = _runs(system)
        last = supervisor(system, system.active_host() or SUPERVISOR_HOSTS[0])
    alone, both = runs["alone"], runs["primary"]
    take_why = f"supervisor-lease-ttl {SUPERVISOR_TTL:g} s + -retry {SUPERVISOR_RETRY:g} s"
    write_why = f"that + lease-ttl {LEASE_TTL:g} s + 2 x addp-timeout {ADDP_TIMEOUT:g} s + 300 ms"
    results: list[Result | Plot] = []
    results += _figures(
        f"{KINDS['alone']}: crash to the standby active (40701)",
        [r.takeover for r in alone],
        TAKEOVER_TARGET,
        take_why,
        f"servers started by the new active: {sum(r.started for r in alone)} (every one "
        f"adopted), failovers: {sum(r.promoted for r in alone)}; last supervisor epoch "
        f"{last.get('epoch')}",
    )
    results += _figures(
        f"{KINDS['primary']}: crash to the pair's first write at a newer epoch",
        [r.write for r in both],
        WRITE_TARGET,
        write_why,
        f"the standby active (40701) at median {_ms(median([r.takeover for r in both]))} ms, "
        f"max {_ms(max(r.takeover for r in both))} ms",
    )
    results.append(
        plotted(
            failover_plot(
                "supervisors_failover",
                "Redundant supervisors (namespace bed, PostgreSQL): the active's host crashed",
                {
                    "crash to the standby active": [r.takeover * 1000 for r in alone],
                    "crash + primary SIGKILL to the first write": [r.write * 1000 for r in both],
                },
                unit="ms",
                target=WRITE_TARGET * 1000,
                target_label=f"target, first write: median <= {WRITE_TARGET * 1000:.0f} ms "
                f"(standby active: {TAKEOVER_TARGET * 1000:.0f} ms)",
            )
        )
    )
    return results


BENCHMARKS: dict[str, Benchmark] = {"supervisors": bench_supervisors}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
