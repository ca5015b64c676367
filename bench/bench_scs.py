"""Solution Control Server: failover time through ``scs -f`` (SIGKILL, SIGSTOP), CPU of watching.

(1) and (2) run the whole system as an operator would: a generated
``confserv.conf`` (a warm-standby pair, ``[confserv]`` and ``[backup]``, on one
SQLite Configuration Database, ``lease-ttl`` 2 s, ``lease-renew`` 0.4 s, ADDP
at 1 s), initialised with ``cfgctl init``, and a generated ``scs.conf``
supervising both (``protocol = addp``, ``addp-timeout`` and
``addp-remote-timeout`` 1 s on the supervisor's links, ``failover-wait`` 0,
``promote-retry`` 0.05 s, ``restart-backoff`` 0.2 s), run as ``scs -f`` (a
child process; it starts the two ``confserv`` processes). A writer in this
process creates DNs through :func:`confserv.client.resilient.open_resilient_client`
(defaults: ADDP 1 s both ways, ``connect_timeout`` 2 s; ``reconnect_timeout``
0.02 s) and records each acknowledged write with its time, the server that
answered (the client's ``address``) and the answer's epoch. It writes in a
tight loop from 0.3 s before each fault until the measurement ends, one write
per 10 ms in between. Every time is ``time.monotonic()`` in this process.

(1) Failover after SIGKILL of the primary: the benchmark sends SIGKILL to
the primary's pid (as the supervisor's status reports it); the supervisor
sees the exit (proof of death), force-promotes the backup and restarts the
killed server, which comes back as backup. Failover time = from the SIGKILL
to the first write acknowledged by the new primary (its address, at a higher
epoch); its distribution over the runs is also plotted
(``scs_failover_sigkill``). Before the next run the pair must be healthy again
(the control port's status polled every 50 ms: both running and linked, one
primary, one backup) and the writer must have 20 writes acknowledged by the
primary; runs thus alternate between the two servers.

(2) Failover after SIGSTOP of the primary: no proof of death, so the
supervisor notices the silence by ADDP (1 to 2 s), then asks the backup to
promote without force every 50 ms until the old lease (2 s) has expired.
Same measurement; once the new primary has acknowledged a write the stopped
server gets SIGCONT (it finds its lease lost and rejoins as backup), and the
next run waits for health as in (1). A run with no such write within 7 s
counts as "never" in the median and its server gets SIGCONT then; if the pair
is then left with both servers backup for 3 s, the benchmark promotes one by
hand (``switch-to-primary`` on its management port, as ``cfgctl promote``)
and says so. The supervisor's own view is shown beside it: its "silent"
(40302) and "promoted" (40306) log lines (wall clock, 1 ms), and when the
writer's write in flight was cut off. At most 20 runs, no new run after 150 s.
The failover times are plotted as in (1) (``scs_failover_sigstop``; a run with
no failover counts as never, so its curve stops short of 100 %).

(3) Supervisor CPU while watching 1,000 servers: a fake-servers process
(``python -m bench.fake_servers N BASEPORT``) serves 1,000
management ports with the real :class:`confserv.server.management.ManagementSession`
over a dummy runtime (challenge, ``auth``, ``status``, ``watch``; ADDP on at
1 s), as 500 pairs (one primary, one backup each). An ``scs.conf`` with 1,000
sections (``autostart`` and ``autorestart`` off, ADDP 1 s both ways) points at
them; ``scs -f`` runs as a process until every link is up, then its CPU time
(``/proc/<pid>/stat`` utime + stime) is measured over 20 s, as is the fake
process's.

Run alone with ``.venv/bin/python -m bench.bench_scs [--quick] [sigkill|sigstop|fleet]``
(the plots then go to a new temporary folder, printed, not to the docs).
"""

from __future__ import annotations

import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from bench.fake_servers import start_fake_servers, write_fleet_config
from bench.measure import CpuWindow, cpu_seconds, raise_open_file_limit, rss_kib
from bench.scs_failover import EV_LINK_LOST, EV_LINK_UP, NO_PRIMARY_GRACE, RUN_TIMEOUT, run_system
from tests.helpers.stats import median, ms, percentile, summary
from tests.helpers.system import Rows, Supervisor

#: Failovers of benchmark 1 (SIGKILL).
KILL_RUNS = 20
#: Seconds of an idle, healthy pair over which CPU is measured before benchmark 1.
IDLE_WINDOW = 5.0
#: Targets of benchmark 1: fault to the first write acknowledged by the new primary
#: (issue 16: near the physical limit; before it 250 and 1,000 ms).
KILL_TARGET_P50_MS = 25.0
KILL_TARGET_P99_MS = 50.0
#: Failovers of benchmark 2 (SIGSTOP), and the time they may take together.
STOP_RUNS = 20
STOP_BUDGET = 150.0
#: A stopped primary gets SIGCONT after this many seconds without a failover.
STOP_GIVE_UP = 7.0
#: Targets of benchmark 2: fault to the first write acknowledged by the new primary,
#: median and p99 (issue 16, with addp-timeout 1 s and lease-ttl 2 s; before: 2.5 s).
STOP_TARGET_P50_S = 2.1
STOP_TARGET_P99_S = 2.4
#: Servers watched in benchmark 3 (pairs), their ADDP timeout, and the measurement.
FLEET_SERVERS = 1000
FLEET_ADDP = 1.0
FLEET_SETTLE = 3.0
FLEET_WINDOW = 20.0
FLEET_CONNECT_TIMEOUT = 180.0
#: Target of benchmark 3: the supervisor's CPU, per cent of one core (issue 16: 10 %).
FLEET_TARGET_PCT = 10.0
#: The smallest settings (``--quick``): one run of each, 20 fake servers, short windows.
QUICK = {
    "KILL_RUNS": 1,
    "IDLE_WINDOW": 1.0,
    "STOP_RUNS": 1,
    "FLEET_SERVERS": 20,
    "FLEET_SETTLE": 0.5,
    "FLEET_WINDOW": 2.0,
}
WARNING = "the figures below will suffer"


# -- 1. SIGKILL ----------------------------------------------------------------------------


def bench_sigkill() -> list[Result | Plot]:
    """Benchmark 1: SIGKILL of the primary to the first write acknowledged by the new one."""
    print(f"[1] failover after SIGKILL of the primary, {KILL_RUNS} runs through scs -f", flush=True)
    runs, extra, idle = run_system(signal.SIGKILL, KILL_RUNS, math.inf, RUN_TIMEOUT, IDLE_WINDOW)
    times = ms(r.to_ack for r in runs if r.to_ack is not None)
    promoted = ms(r.to_promoted for r in runs if r.to_promoted is not None)
    detected = ms(r.to_detected for r in runs if r.to_detected is not None)
    healed = [r.to_healthy for r in runs]
    p50, p99 = median(times), percentile(times, 99)
    per_run = ", ".join(f"{t:.0f}" for t in times)
    how = (
        f"{len(runs)} SIGKILLs of the primary (alternating servers), each from the SIGKILL "
        f"to the first write acknowledged by the new primary (its address, higher epoch) "
        f"through open_resilient_client writing in a tight loop"
    )
    return [
        figure(
            "Failover after SIGKILL, kill to first write on the new primary, median",
            p50,
            "ms",
            f"<= {KILL_TARGET_P50_MS:g} ms",
            p50 <= KILL_TARGET_P50_MS,
            f"{how}: {summary(times, digits=0)}; per run: {per_run} ms",
        ),
        figure(
            "Failover after SIGKILL, p99",
            p99,
            "ms",
            f"<= {KILL_TARGET_P99_MS:g} ms",
            p99 <= KILL_TARGET_P99_MS,
            f"nearest rank over the {len(runs)} runs above (the max); {extra}",
        ),
        figure(
            "Failover after SIGKILL, max",
            max(times),
            "ms",
            notes=f"the slowest of the {len(runs)} runs",
        ),
        figure(
            "SIGKILL: promotion as the supervisor logged it, median",
            median(promoted),
            "ms",
            notes=f"from the SIGKILL (time.time) to scs's 40306 'is primary' line (its wall "
            f"clock, 1 ms): {summary(promoted, digits=0)}; to its 40301 'died' line: "
            f"{summary(detected, digits=0)}; pair healthy again (killed server restarted, back "
            f"as backup, seen on the control port) after {summary(healed, 's')}",
        ),
        figure(
            "Supervisor CPU, one idle pair (2 servers, ADDP 1 s)",
            idle.get("scs", math.nan),
            "% of a core",
            notes=f"before the runs, the pair healthy and no client: utime+stime of scs over "
            f"{IDLE_WINDOW:g} s (/proc/<pid>/stat); the two servers meanwhile: "
            + ", ".join(f"{n} {v:.1f}%" for n, v in idle.items() if n != "scs")
            + "; all of the failover figures above ran beside this supervisor",
            precision=1,
        ),
        plotted(
            failover_plot(
                "scs_failover_sigkill",
                f"Failover after SIGKILL of the primary through scs -f, {len(runs)} runs: from "
                f"the SIGKILL to the first write acknowledged by the new primary (p99 target: "
                f"<= {KILL_TARGET_P99_MS:g} ms)",
                {"SIGKILL": times},
                unit="ms",
                target=KILL_TARGET_P50_MS,
                target_label=f"target: median <= {KILL_TARGET_P50_MS:g} ms",
            )
        ),
    ]


# -- 2. SIGSTOP ----------------------------------------------------------------------------


def bench_sigstop() -> list[Result | Plot]:
    """Benchmark 2: SIGSTOP of the primary to the first write acknowledged by the new one."""
    print(
        f"[2] failover after SIGSTOP of the primary, up to {STOP_RUNS} runs in "
        f"{STOP_BUDGET:g} s through scs -f",
        flush=True,
    )
    runs, extra, _ = run_system(signal.SIGSTOP, STOP_RUNS, STOP_BUDGET, STOP_GIVE_UP)
    done = [r for r in runs if r.to_ack is not None]
    stuck = [r for r in runs if r.to_ack is None]
    times_all = [math.inf if r.to_ack is None else r.to_ack for r in runs]
    times = [r.to_ack for r in done if r.to_ack is not None]
    promoted = [r.to_promoted for r in done if r.to_promoted is not None]
    detected = [r.to_detected for r in runs if r.to_detected is not None]
    lost = [r.to_lost for r in done if r.to_lost is not None]
    after_lost = [
        r.to_ack - r.to_lost for r in done if r.to_lost is not None and r.to_ack is not None
    ]
    after_promoted = [
        r.to_ack - r.to_promoted for r in done if r.to_promoted is not None and r.to_ack is not None
    ]
    healed = [r.to_healthy for r in done]
    p50 = median(times_all)
    short = "" if len(runs) >= STOP_RUNS else f" (ONLY {len(runs)} runs fit in {STOP_BUDGET:g} s)"
    per_run = ", ".join("never" if math.isinf(t) else f"{t:.2f}" for t in times_all)
    locked_stuck = sum(r.lock_wait for r in stuck)
    fenced_stuck = sum(r.self_fenced for r in stuck)
    wedged = sum(r.operator > 0 for r in runs)
    locked_done = sum(r.lock_wait for r in done)
    dominant = "the writer's side" if median(after_promoted) > 0.5 else "the supervisor's side"
    return [
        figure(
            "Failover after SIGSTOP, stop to first write on the new primary, median",
            p50,
            "s",
            f"<= {STOP_TARGET_P50_S:g} s",
            p50 <= STOP_TARGET_P50_S,
            f"{len(runs)} SIGSTOPs of the primary{short}, each from the SIGSTOP to the "
            f"first write acknowledged by the new primary through open_resilient_client "
            f"(tight loop), then SIGCONT; a run with no such write within "
            f"{STOP_GIVE_UP:g} s counts as never (inf) and gets SIGCONT then; per run: "
            f"{per_run} s; {extra}",
            precision=2,
        ),
        figure(
            "Failover after SIGSTOP, p99",
            percentile(times_all, 99),
            "s",
            f"<= {STOP_TARGET_P99_S:g} s",
            percentile(times_all, 99) <= STOP_TARGET_P99_S,
            f"the same {len(runs)} runs (a run that never failed over counts as inf)",
            precision=2,
        ),
        figure(
            "SIGSTOP runs with no failover while the primary was stopped",
            len(stuck),
            f"of {len(runs)}",
            "0",
            not stuck,
            f"in {locked_stuck} of these {len(stuck)} runs the backup's lease take waited "
            f"for SQLite's write lock until the SIGCONT (or failed with 'database is "
            f"locked', 20150, after the 10 s busy timeout): the primary was stopped inside "
            f"a BEGIN IMMEDIATE transaction (a write or a lease renewal) and holds the lock "
            f"while stopped, so no promotion can take the lease; {locked_done} of the "
            f"{len(done)} runs that failed over waited for the lock too. In {fenced_stuck} "
            f"stuck run(s) the take that had waited succeeded after SIGCONT and the new "
            f"primary self-fenced at once (RoleMachine.lease_taken dates the lease from "
            f"when the take was sent, seconds earlier); after {wedged} run(s) the pair was "
            f"left with NO PRIMARY (both backup for {NO_PRIMARY_GRACE:g} s) and the "
            f"benchmark promoted one by hand (switch-to-primary on its management port): "
            f"the supervisor has no rule for a pair without a primary",
        ),
        figure(
            "Failover after SIGSTOP, runs that failed over, median",
            median(times),
            "s",
            notes=f"{len(times)} runs: {summary(times, 's')}; pair healthy again (after "
            f"SIGCONT) {summary(healed, 's')} from the SIGSTOP",
            precision=2,
        ),
        figure(
            "SIGSTOP: promotion as the supervisor logged it, median",
            median(promoted),
            "s",
            notes=f"runs that failed over, from the SIGSTOP (time.time) to scs's 40306 'is "
            f"primary' line: {summary(promoted, 's')}; to its 40302 'silent' line "
            f"(ADDP timeout on its link, all runs): {summary(detected, 's')}; the lease "
            f"(ttl 2 s, renewed every 0.4 s) expires 1.6 to 2 s after the stop",
            precision=2,
        ),
        figure(
            "SIGSTOP: writer's write in flight cut off, median",
            median(lost),
            "s",
            notes=f"runs that failed over, from the SIGSTOP to the writer's ConnectionLostError "
            f"(the resilient client's own ADDP, DEFAULT_ADDP timeout 1 s: poll after 1 s "
            f"of silence, lost 1 s later): {summary(lost, 's')}; from there to its "
            f"first write on the new primary: {summary(after_lost, 's')} (it "
            f"reconnects to the lost, stopped server first: the kernel accepts the TCP "
            f"connection and the handshake waits connect_timeout = 2 s); first new ack "
            f"minus the promotion line: {summary(after_promoted, 's')}, so "
            f"{dominant} dominates the figure",
            precision=2,
        ),
        plotted(
            failover_plot(
                "scs_failover_sigstop",
                f"Failover after SIGSTOP of the primary through scs -f, {len(runs)} runs: from "
                f"the SIGSTOP to the first write acknowledged by the new primary, never if none "
                f"within {STOP_GIVE_UP:g} s",
                {"SIGSTOP": times_all},
                unit="s",
                target=STOP_TARGET_P50_S,
                target_label=f"target: median <= {STOP_TARGET_P50_S:g} s",
            )
        ),
    ]


# -- 3. CPU of watching 1,000 servers ------------------------------------------------------


def _all_linked(count: int) -> Callable[[Rows], bool]:
    def check(rows: Rows) -> bool:
        return len(rows) == count and all(r["state"] == "running" for r in rows.values())

    return check


def bench_fleet_cpu() -> list[Result | Plot]:
    """Benchmark 3: the supervisor's CPU while watching 1,000 (fake) servers at ADDP 1 s."""
    n = FLEET_SERVERS
    print(f"[3] supervisor CPU watching {n} servers (fake management ports), ADDP 1 s", flush=True)
    raise_open_file_limit(n + 512)  # the supervisor inherits it
    with tempfile.TemporaryDirectory(prefix="bench-scs-fleet-") as tmp:
        directory = Path(tmp)
        fake = start_fake_servers(directory, n, addp_timeout=FLEET_ADDP)
        scs: Supervisor | None = None
        try:
            conf, control = write_fleet_config(directory, fake.ports, addp_timeout=FLEET_ADDP)
            scs = Supervisor(conf, control, directory / "scs-fleet.log")
            scs.start()
            try:
                trio.run(partial(scs.wait, _all_linked(n), FLEET_CONNECT_TIMEOUT, every=0.5))
            except trio.TooSlowError:
                scs.check_alive()
                raise
            connected = time.monotonic() - scs.started_at
            startup_cpu = cpu_seconds(scs.pid)
            ups = scs.logged(EV_LINK_UP)
            time.sleep(FLEET_SETTLE)
            lost_before = scs.logged(EV_LINK_LOST)
            window = CpuWindow({"scs": scs.pid, "fake": fake.pid})
            time.sleep(FLEET_WINDOW)
            used, elapsed = window.percent(), window.wall
            lost = scs.logged(EV_LINK_LOST) - lost_before
            rss = rss_kib(scs.pid)
            rows = trio.run(scs.status)
            running = sum(r["state"] == "running" for r in rows.values())
        finally:
            if scs is not None:
                scs.stop()
            fake.stop()
    scs_pct, fake_pct, machine_pct = used["scs"], used["fake"], used["machine"]
    return [
        figure(
            f"Supervisor CPU watching {n:,} servers, ADDP 1 s",
            scs_pct,
            "% of a core",
            f"<= {FLEET_TARGET_PCT:g} %",
            scs_pct <= FLEET_TARGET_PCT and lost == 0,
            f"scs -f on {n} sections ({n // 2} pairs, autostart/autorestart off, protocol = "
            f"addp, addp-timeout = addp-remote-timeout = 1) watching a fake-servers "
            f"process (real ManagementSession per port, ADDP 1 s); utime+stime from "
            f"/proc/<pid>/stat over {elapsed:.1f} s once every link was up (+{FLEET_SETTLE:g} "
            f"s); {lost} links lost during the window, {running}/{n} running at the end; "
            f"RSS {rss / 1024:.0f} MiB; compare the idle pair of benchmark 1. Idle links "
            f"wait in the ADDP hub (one task, one epoll) and the status requests go out on "
            f"one grid for all servers",
            precision=1,
        ),
        figure(
            f"Fake servers' CPU ({n:,} management ports)",
            fake_pct,
            "% of a core",
            notes=f"the other end of the same links over the same window; whole machine (user "
            f"+ nice + system of /proc/stat, both cores): {machine_pct:.0f}% of one core, so "
            f"other processes used about {max(0.0, machine_pct - scs_pct - fake_pct):.0f}%",
            precision=1,
        ),
        figure(
            f"Supervisor start-up: every one of {n:,} links up",
            connected,
            "s",
            notes=f"from spawning scs -f until the control port's status showed all {n} "
            f"running (polled every 0.5 s); {ups} 'watching' lines (40201) by then; "
            f"the supervisor had used {startup_cpu:.1f} s of CPU",
            precision=1,
        ),
    ]


BENCHMARKS: dict[str, Benchmark] = {
    "sigkill": bench_sigkill,
    "sigstop": bench_sigstop,
    "fleet": bench_fleet_cpu,
}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
