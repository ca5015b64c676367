"""Warm-standby pair: replication lag, planned switchover, proxy redirect after a failover.

One configuration file holds the primary (``[confserv]``), the backup
(``[backup]``) and a proxy (``[proxy]``, ``master`` = both management ports)
on one SQLite database (WAL, ``synchronous=FULL``), initialised with
``cfgctl init -s confserv -c FILE --backup-section backup``. Each server is a
separate ``confserv`` process (the console script) unless said otherwise; the
clients are the real client library (:func:`confserv.client.session.open_client`,
:func:`confserv.client.session.open_management`,
:func:`confserv.client.resilient.open_resilient_client`) in this process. Everything
runs on 127.0.0.1 with ADDP off, lease-ttl 4 s and lease-renew 1 s, and stops
by itself; every time is ``time.monotonic()`` unless said otherwise.

(1) Replication lag: the primary is a process; the backup runs in this
process (``confserv.server.app.run_server`` on the same file's ``[backup]``
section) with its ``ConfigService.apply`` wrapped to timestamp each change
once it is applied to memory (and published). The writer, also in this
process, creates one DN at a time on the primary and waits until the backup
has applied it. Lag = applied - the writer receiving the primary's answer
(the commit's acknowledgement; may be negative when the backup applies the
streamed change before the writer's answer is read); applied - sent is shown
too. Then the backup as a process, observed by polling its management
``status`` until its ``serial`` reaches the write's: an upper bound whose
resolution is one status round trip.

(2) Planned switchover, as ``scs switchover`` will do it: ``switch-to-backup``
on the primary, then ``switch-to-primary`` on the backup, through two
management connections opened beforehand; a writer creates DNs as fast as
it can through ``open_resilient_client`` (``reconnect_timeout`` 0.01 s). The
longest pause is the largest gap between consecutive acknowledged writes of
the run (the writer starts 0.3 s before the switch); a writer that has no
acknowledged write within the observation window after the promotion counts
as "never resumed" (the pause is then at least the window). Run first with a
writer that leaves and reopens the resilient client when a write is refused
with ``backup-mode`` (a workaround, see the notes: the client library does
not move off a server that became backup), then with the client library as
it is. Alternating direction; the same two processes serve all runs.

(3) Proxy redirect: primary, backup and proxy are processes. A client of the
proxy (registered once) waits; the benchmark SIGKILLs the primary, waits for
it to exit (proof of death), forces ``switch-to-primary`` on the backup a
random 0 to 100 ms later (so that the promotion falls at any phase of the
proxy's retry cycle), and from the moment the promotion's answer arrives
creates a DN through the proxy, retrying at once on ``no-primary``,
``outcome-unknown`` or ``backup-mode`` until a create succeeds at the new
epoch: the proxy relays writes only to the primary it follows, so that
success proves the redirect. Shown beside it: the
same interval ending at the proxy's own "Connection to primary ...
established" (event 4503) log line (wall clock, 1 ms resolution), and the
steady-state latency of a create through the proxy. The killed server is
restarted between runs (it comes back as backup since the lease is valid)
and the next run kills the other one.

Run alone with ``.venv/bin/python -m bench.bench_pair [--quick] [replication|switchover|proxy]``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

import trio

from bench._report import Benchmark, Result, figure, main
from bench.pair_runs import (
    PROMOTE_DELAY_MAX,
    SWITCH_WINDOW,
    SwitchRun,
    check_acked,
    lag_in_process,
    lag_polled,
    pair,
    primary_node,
    proxy_runs,
    switchover_runs,
)
from tests.helpers.nodes import Pair
from tests.helpers.stats import median, ms, percentile, summary
from tests.helpers.system import PASSWORD

#: Writes measured in benchmark 1 (each variant), after a warm-up.
LAG_WRITES = 300
#: Target of benchmark 1: p99 of commit (answer) to applied on the backup.
LAG_TARGET_MS = 5.0
#: Switchovers per variant of benchmark 2 (alternating direction).
SWITCHOVERS = 10
#: Target of benchmark 2: the longest pause of the writer.
SWITCH_TARGET_MS = 200.0
#: Failovers of benchmark 3.
REDIRECTS = 24
#: Target of benchmark 3: p99 of promotion answer to the proxy following.
REDIRECT_TARGET_MS = 100.0
#: The smallest settings (``--quick``).
QUICK = {"LAG_WRITES": 5, "SWITCHOVERS": 1, "REDIRECTS": 1}
WARNING = "the latencies below will be high"


# -- 1. replication lag ---------------------------------------------------------------------


def bench_replication() -> list[Result]:
    """Benchmark 1: commit on the primary to applied on the backup."""
    print(
        f"[1] replication lag: {LAG_WRITES} creates one at a time; backup in this process "
        "(apply timestamped), then backup as a process (status polled)",
        flush=True,
    )
    with pair() as nodes:
        hooked = trio.run(lag_in_process, nodes, nodes.conf.parent, LAG_WRITES)
        polled = trio.run(lag_polled, nodes, LAG_WRITES)
    lag = ms([a - b for a, b in zip(hooked.applied, hooked.answered, strict=True)])
    from_send = ms([a - s for a, s in zip(hooked.applied, hooked.sent, strict=True)])
    write = ms([b - s for b, s in zip(hooked.answered, hooked.sent, strict=True)])
    negative = sum(x < 0 for x in lag)
    p99 = percentile(lag, 99)
    complete = hooked.missing == 0
    polled_lag = ms([a - b for a, b in zip(polled.applied, polled.answered, strict=True)])
    counts = Counter(min(p, 3) for p in polled.polls)
    polls_note = (
        ", ".join(f"{'3 or more' if k == 3 else k} for {counts[k]}" for k in sorted(counts))
        + f" of {len(polled.polls)} writes"
    )
    rtt = ms(polled.poll_rtts)
    return [
        figure(
            "Replication lag, answer to applied on the backup, median",
            median(lag),
            "ms",
            notes=f"{len(lag)} creates of DNs, one at a time, each waited for on the backup; "
            f"backup in this process (run_server on [backup]), primary a confserv process; "
            f"lag = time the backup's ConfigService.apply returned for that serial minus "
            f"time the writer had the primary's answer: {summary(lag)}; {negative} of "
            f"{len(lag)} negative (applied before the writer read its answer)",
            precision=3,
        ),
        figure(
            "Replication lag, answer to applied on the backup, p99",
            p99,
            "ms",
            f"<= {LAG_TARGET_MS:g} ms",
            complete and p99 <= LAG_TARGET_MS,
            f"nearest rank over the {len(lag)} writes above"
            + ("" if complete else f"; {hooked.missing} writes NEVER REACHED the backup"),
            precision=3,
        ),
        figure(
            "Replication lag, write sent to applied on the backup, p99",
            percentile(from_send, 99),
            "ms",
            notes=f"same writes: {summary(from_send)}; for comparison the write itself (sent to "
            f"answered, SQLite commit with fsync included): {summary(write)}",
            precision=3,
        ),
        figure(
            "Replication lag, backup as a process (status polled), p99 upper bound",
            percentile(polled_lag, 99),
            "ms",
            notes=f"{len(polled_lag)} creates; from the writer having the answer until a "
            f"management 'status' answer of the backup process shows its serial: "
            f"{summary(polled_lag)}; "
            f"status polls needed per write: {polls_note}; one status round trip, the "
            f"resolution of this method: {summary(rtt)}"
            + ("" if polled.missing == 0 else f"; {polled.missing} writes NEVER SEEN"),
            precision=3,
        ),
    ]


# -- 2. planned switchover ------------------------------------------------------------------


def _switch_result(runs: list[SwitchRun], label: str, how: str, check: str) -> list[Result]:
    pauses = [r.longest_pause * 1000 for r in runs]
    stuck = [r for r in runs if not r.resumed]
    mid = median(pauses)
    worst = max(pauses, default=math.nan)
    refused: Counter[str] = Counter()
    for r in runs:
        refused.update(r.refused)
    refusals = ", ".join(f"{n:,} {code}" for code, n in refused.most_common()) or "none"
    per_run = "; ".join(
        f"{r.direction} {r.longest_pause * 1000:.0f}"
        + ("" if r.resumed else " (never resumed)")
        + f" ms [demote {(r.demoted - r.switch_sent) * 1000:.1f}, promote "
        f"{(r.promoted - r.demoted) * 1000:.1f} ms]"
        for r in runs
    )
    stuck_note = (
        f"; {len(stuck)} of {len(runs)} runs NEVER RESUMED within {SWITCH_WINDOW:g} s of the "
        f"promotion answer (their pause is a lower bound: up to the end of the window)"
        if stuck
        else ""
    )
    notes = (
        f"{len(runs)} switchovers ({how}): largest gap between consecutive acknowledged "
        f"creates; median {mid:.0f} ms, worst {worst:.0f} ms{stuck_note}; writes refused: "
        f"{refusals}; outcome unknown: {sum(r.unknown for r in runs)}; acknowledged: "
        f"{sum(len(r.acks) for r in runs):,}; {check}; per run: {per_run}"
    )
    return [
        figure(
            f"Planned switchover, longest writer pause, median ({label})",
            mid,
            "ms",
            f"<= {SWITCH_TARGET_MS:g} ms",
            not stuck and mid <= SWITCH_TARGET_MS,
            notes,
            precision=1,
        ),
        figure(
            f"Planned switchover, longest writer pause, worst ({label})",
            worst,
            "ms",
            f"<= {SWITCH_TARGET_MS:g} ms",
            not stuck and worst <= SWITCH_TARGET_MS,
            "the worst run of the same "
            + str(len(runs))
            + (" (at least: a run never resumed)" if stuck else ""),
            precision=1,
        ),
    ]


def _scrypt_ms() -> float:
    """Milliseconds one password check (``confserv.model.passwords.verify_password``) takes here."""
    from confserv.model.passwords import hash_password, verify_password

    stored = hash_password(PASSWORD)
    start = time.perf_counter()
    verify_password(PASSWORD, stored)
    return (time.perf_counter() - start) * 1000


def bench_switchover() -> list[Result]:
    """Benchmark 2: planned switchovers under a continuous resilient writer."""
    print(
        f"[2] planned switchover: {SWITCHOVERS} switch-to-backup + switch-to-primary per "
        "variant, alternating, writer as fast as it can; a writer that reopens on backup-mode, "
        "then the client library as is",
        flush=True,
    )
    results: list[Result] = []

    async def go(nodes: Pair) -> list[tuple[list[SwitchRun], str]]:
        nodes.first.start()
        await nodes.first.wait_role("primary")
        nodes.second.start()
        await nodes.second.wait_role("backup")
        done = []
        for reopen in (True, False):
            runs = await switchover_runs(
                nodes, reopen=reopen, runs=SWITCHOVERS, tag="r" if reopen else "a"
            )
            primary = await primary_node(nodes)
            done.append((runs, await check_acked(primary.address, runs)))
        return done

    with pair() as nodes:
        (reopened, reopened_check), (as_is, as_is_check) = trio.run(go, nodes)
    scrypt = _scrypt_ms()
    results += _switch_result(
        reopened,
        "writer reopens on backup-mode",
        "open_resilient_client, reconnect_timeout 0.01 s, on fresh processes; a write refused "
        "with backup-mode makes the writer leave and reopen the resilient client "
        f"({sum(r.reopened for r in reopened)} reopenings), as a fixed client library would "
        "reconnect; the first run's new primary had never checked the writer's password, so "
        f"that run includes one scrypt verification (~{scrypt:.0f} ms in this process), later "
        "runs find it cached",
        reopened_check,
    )
    results += _switch_result(
        as_is,
        "resilient client as is",
        "open_resilient_client, reconnect_timeout 0.01 s; a refused write is counted and the "
        "next one sent at once. The demoted server keeps the client's connection open and "
        "refuses every write with backup-mode, which the resilient client passes to the caller "
        "without reconnecting, so the writer stays on the backup",
        as_is_check,
    )
    return results


# -- 3. proxy redirect ----------------------------------------------------------------------


def bench_proxy_redirect() -> list[Result]:
    """Benchmark 3: from the forced promotion's answer until the proxy follows the new primary."""
    print(
        f"[3] proxy redirect: {REDIRECTS} failovers (SIGKILL of the primary, forced "
        "promotion of the backup), proxy and both servers as processes",
        flush=True,
    )
    with pair() as nodes:
        runs, baseline = trio.run(proxy_runs, nodes, REDIRECTS)
    writes = [r.write_ms for r in runs]
    logged = [r.log_ms for r in runs if not math.isnan(r.log_ms)]
    promote = [r.promote_ms for r in runs]
    errors: Counter[str] = Counter()
    for r in runs:
        errors.update(r.errors)
    retried = sum(r.tries > 1 for r in runs)
    p99 = percentile(writes, 99)
    base = ms(baseline)
    per_run = ", ".join(f"{r.write_ms:.0f}" for r in runs)
    return [
        figure(
            "Proxy redirect after promotion, median",
            median(writes),
            "ms",
            notes=f"{len(runs)} failovers, alternating which server is killed, the promotion sent "
            f"a random 0 to {PROMOTE_DELAY_MAX * 1000:.0f} ms after the kill: from the "
            f"switch-to-primary (force) answer until a create through the proxy succeeded "
            f"at the new epoch (the proxy relays writes only to the primary it follows): "
            f"{summary(writes)}; includes the create itself (steady-state create through "
            f"the proxy: {summary(base)}); {retried} runs needed more than one create "
            f"(errors: {dict(errors) or 'none'}); per run: {per_run} ms",
            precision=1,
        ),
        figure(
            "Proxy redirect after promotion, p99",
            p99,
            "ms",
            f"<= {REDIRECT_TARGET_MS:g} ms",
            p99 <= REDIRECT_TARGET_MS,
            f"nearest rank over the {len(writes)} runs above",
            precision=1,
        ),
        figure(
            "Proxy redirect, as the proxy logged it, p99",
            percentile(logged, 99),
            "ms",
            notes=f"from the promotion answer (time.time) until the proxy's event 4503 'Connection "
            f"to primary at <new primary> established' (its log's wall clock, truncated to "
            f"1 ms): {summary(logged)} over {len(logged)} runs; the proxy retries its "
            f"masters every 25 ms (confserv.server.proxy.RETRY)",
            precision=1,
        ),
        figure(
            "Forced promotion (switch-to-primary, force), median",
            median(promote),
            "ms",
            notes=f"from sending switch-to-primary (force) to the backup, which was sent a random "
            f"0 to {PROMOTE_DELAY_MAX * 1000:.0f} ms after the killed primary had exited, "
            f"until its answer (management connection opened beforehand): "
            f"{summary(promote)}",
            precision=1,
        ),
    ]


# -- entry points ---------------------------------------------------------------------------

BENCHMARKS: dict[str, Benchmark] = {
    "replication": bench_replication,
    "switchover": bench_switchover,
    "proxy": bench_proxy_redirect,
}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
