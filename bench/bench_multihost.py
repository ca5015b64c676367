"""Failover across hosts (issue 13): a server killed, its host crashed, its host cut off.

One installation of :mod:`tests.multihost.system` on the network-namespace bed
serves every run: the pair's members on hosts A and B, each started by its
host's agent (``lca``), the supervisor (``scs -f``), an agent and the proxy on
C, PostgreSQL on D with a synchronous standby on E, and on F a writer
creating DNs through the resilient client library (one after another, 5 ms
apart) and a reader of the proxy, every request recorded with its
``time.time()``. ADDP timeout 1 s on every link, lease-ttl 2 s renewed every
0.4 s, ``failover-wait = 0``. Three kinds of fault, 20 runs each (``RUNS``),
always on the current primary:

- a server SIGKILLed on its host: its agent reports the exit (proof of death)
  and the supervisor force-promotes the backup; target median <= 50 ms;

- the primary's host crashed (``TestBed.crash``: every process stopped, its
  veth deleted so that nothing more leaves it, all SIGKILLed): its agent's
  link is lost without proof of anything, so the backup is promoted once the
  old lease has expired; target median <= ``lease-ttl`` + 2 x
  ``addp-timeout`` + 300 ms = 4.3 s;

- the primary isolated by iptables from every other host, both ways
  (``TestBed.isolate``, one DROP rule per host and direction): it fences
  itself by its lease, the backup is promoted once the lease has expired;
  same target.

Measured: from ``time.time()`` just before the fault is injected to the end
of the first write acknowledged by the other member at an epoch newer than
any acknowledged before the fault (the writer's own record). Beside it, the
supervisor's own figure, from its 40306 line ("... N ms after the fault was
seen": from its detection, not from the fault). After each run the
installation heals as it would (a killed server is restarted by the
supervisor; a crashed host is rebooted, ``TestBed.recover``, and its agent
started again, as at boot; an isolated host is healed) and the next run
starts once ``scs status`` shows it healthy with the old primary back as
backup and the writer has written again. The writer notices a silent server
only by its own ADDP (timeout 1 s: about 2 s of silence), so a crash or an
isolation shows at least that here, however early the promotion. Runs where
namespaces cannot be made (not root, no ``ip`` or ``iptables``) or PostgreSQL
is missing are skipped with a note. ``BENCH_KEEP_LOGS=1`` keeps the folder of the logs (printed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._plots import Plot, failover_plot
from bench._report import Benchmark, Result, figure, main, plotted
from confserv.logs.handlers import stamp
from tests.chaos.checker import Request
from tests.helpers.stats import median, percentile
from tests.multihost.netns import NetnsUnavailable, TestBed
from tests.multihost.system import (
    ADDP_TIMEOUT,
    HOSTS,
    LEASE_TTL,
    MEMBERS,
    PORT,
    MultiHost,
    healthy,
    multi_host,
    primary_of,
)
from tests.pg_cluster import PgClusterError

RUNS = 20
QUICK = {"RUNS": 2}
WARNING = "six hosts' processes and PostgreSQL share the cores: failovers slow down"
#: The targets, in seconds: a kill; a host crashed or cut off.
KILL_TARGET = 0.050
LEASE_TARGET = LEASE_TTL + 2 * ADDP_TIMEOUT + 0.300
#: Seconds a run may take to fail over (then it counts as never), and to heal.
FAILOVER_TIMEOUT, HEAL_TIMEOUT = 30.0, 120.0
#: Writes acknowledged by the primary before each fault (the writer is settled).
BEFORE = 5
#: The workload stops by itself after 600 s; it is restarted, between runs, before that.
WORKLOAD_AGE = 480.0
_SEEN = re.compile(r"(\d+) ms after the fault was seen")

KINDS = {
    "kill": "server SIGKILLed",
    "crash": "host crashed",
    "isolate": "host isolated (iptables)",
}
#: The line that says the supervisor noticed: the agent's exit report; a silence.
DETECTED = {"kill": 40301, "crash": 40302, "isolate": 40302}


@dataclass(frozen=True, slots=True)
class Run:
    """One fault's figures, in seconds from the fault (``inf``: never)."""

    kind: str
    old: str
    fault: float  # time.time() just before the fault
    failover: float  # to the first write acknowledged by the new primary
    detected: float  # to the supervisor's 40301 (kill) or 40302 line (its log's ms)
    promoted: float  # to the supervisor's 40306 line
    seen: float  # the 40306 line's own "N ms after the fault was seen", in seconds
    inject: float  # how long injecting the fault took (crash, isolate: several commands)


class Tail:
    """The clients' record read as it grows (only the new lines are parsed each time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.requests: list[Request] = []

    def read(self) -> list[Request]:
        """Every request recorded so far."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
            self.offset += len(data)
            *lines, self.partial = (self.partial + data).split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError, TypeError):
                    self.requests.append(Request(**json.loads(line)))
        return self.requests


def _address(member: str, bed: TestBed) -> str:
    return f"{bed.address(MEMBERS[member])}:{PORT}"


def _acks(tail: Tail, server: str, since: float) -> list[Request]:
    return [
        r
        for r in tail.read()
        if r.op == "write" and r.outcome == "ok" and r.server == server and r.end >= since
    ]


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check`` every 10 ms until it returns something true (TimeoutError after)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.01)


class Clients:
    """The workload and its record; restarted before it stops by itself (600 s)."""

    def __init__(self, system: MultiHost) -> None:
        self.system = system
        self.tail = Tail(system.tmp / "requests.jsonl")
        self.started = time.time()

    def fresh(self) -> None:
        """Start the clients again if they stopped or will stop soon (between runs only)."""
        system = self.system
        if system.workload is None:
            return
        if system.workload.poll() is None and time.time() - self.started < WORKLOAD_AGE:
            return
        system.stop_workload()
        (system.tmp / "stop").unlink(missing_ok=True)
        system.start_workload()
        self.started = time.time()


def _settled(system: MultiHost, clients: Clients, old: str | None) -> tuple[str, int]:
    """Wait until healthy (``old`` back as backup) and the writer writes to the primary;
    (the primary, the newest epoch acknowledged)."""

    def ready(rows: dict[str, dict[str, Any]]) -> bool:
        return healthy(rows) and (old is None or rows[old]["role"] == "backup")

    rows = system.wait_status(ready, timeout=HEAL_TIMEOUT)
    clients.fresh()
    primary = primary_of(rows)
    since = time.time()
    where = _address(primary, system.bed)
    acks = _wait(
        f"{BEFORE} writes acknowledged by {primary}",
        lambda: len(found := _acks(clients.tail, where, since)) >= BEFORE and found,
        FAILOVER_TIMEOUT,
    )
    return primary, max(r.epoch or 0 for r in acks)


def _inject(system: MultiHost, kind: str, old: str) -> None:
    bed, host = system.bed, MEMBERS[old]
    if kind == "kill":
        pid = system.server_pid(old)
        if pid is None:
            raise RuntimeError(f"{old} runs no server to kill")
        bed.kill(pid, signal.SIGKILL)
    elif kind == "crash":
        bed.crash(host)
    else:
        bed.isolate(host)


def _heal(system: MultiHost, kind: str, old: str) -> None:
    host = MEMBERS[old]
    if kind == "crash":
        system.bed.recover(host)  # the host boots again: its agent starts, as at boot
        system.start_agent(host)
    elif kind == "isolate":
        system.bed.heal_all()


def _one(system: MultiHost, clients: Clients, kind: str, previous: str | None) -> Run:
    """One fault of ``kind`` on the primary, once healthy with ``previous`` as backup."""
    old, epoch = _settled(system, clients, previous)
    new = next(m for m in MEMBERS if m != old)
    where = _address(new, system.bed)
    fault = time.time()
    _inject(system, kind, old)
    inject = time.time() - fault

    def first() -> Request | None:
        later = [r for r in _acks(clients.tail, where, fault) if (r.epoch or 0) > epoch]
        return min(later, key=lambda r: r.end) if later else None

    try:
        ack: Request | None = _wait(f"a write acknowledged by {new}", first, FAILOVER_TIMEOUT)
    except TimeoutError:
        ack = None
    failover = math.inf if ack is None else ack.end - fault
    promoted = seen = detected = math.inf
    with contextlib.suppress(TimeoutError):
        detected = system.wait_event(DETECTED[kind], since=fault - 0.001, timeout=1).at - fault
    with contextlib.suppress(TimeoutError):
        line = system.wait_event(40306, since=fault - 0.001, timeout=5 if ack else 1)
        promoted = line.at - fault
        match = _SEEN.search(line.text)
        seen = int(match.group(1)) / 1000 if match else math.nan
    _heal(system, kind, old)
    return Run(kind, old, fault, failover, detected, promoted, seen, inject)


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value * 1000:.0f}"


def _clock(at: float) -> str:
    return stamp(at, date=False)


def _runs(system: MultiHost) -> dict[str, list[Run]]:
    clients = Clients(system)
    out: dict[str, list[Run]] = {}
    previous: str | None = None
    for n, (kind, label) in enumerate(KINDS.items(), 1):
        print(f"[{n}] {label}, {RUNS} runs", flush=True)
        out[kind] = []
        for i in range(RUNS):
            run = _one(system, clients, kind, previous)
            previous = run.old
            out[kind].append(run)
            print(
                f"    run {i + 1} ({run.old} at {_clock(run.fault)}): first write on the new "
                f"primary {_ms(run.failover)} ms; {DETECTED[kind]} logged at "
                f"{_ms(run.detected)} ms, 40306 at {_ms(run.promoted)} ms, "
                f"'{_ms(run.seen)} ms after the fault was seen'; injecting took "
                f"{_ms(run.inject)} ms",
                flush=True,
            )
    return out


def _list(values: list[float]) -> str:
    return ", ".join(_ms(v) for v in values) + " ms"


def _figures(kind: str, runs: list[Run], target: float, why: str) -> list[Result]:
    times = sorted(r.failover for r in runs)
    seen = sorted(r.seen for r in runs if not math.isnan(r.seen))
    detected = sorted(r.detected for r in runs)
    promoted = sorted(r.promoted for r in runs)
    late = sum(r.failover - r.promoted > 1.0 for r in runs)
    p50, p99, worst = median(times), percentile(times, 99), max(times)
    what = "exit reported (40301)" if kind == "kill" else "silence noticed (40302)"
    return [
        figure(
            f"{KINDS[kind]}: fault to first write on the new primary, median",
            p50 * 1000,
            "ms",
            f"<= {target * 1000:.0f} ms ({why})",
            p50 <= target,
            f"{len(runs)} runs; p99 {_ms(p99)} ms, max {_ms(worst)} ms; sorted: {_list(times)}; "
            f"from the fault, the supervisor's {what}: median {_ms(median(detected))} ms, "
            f"its promotion (40306): median {_ms(median(promoted))} ms, max "
            f"{_ms(max(promoted))} ms; the writer reached the new primary more than 1 s after "
            f"its promotion in {late} of {len(runs)} runs",
        ),
        figure(f"{KINDS[kind]}: p99", p99 * 1000, "ms", notes="nearest rank over the same runs"),
        figure(f"{KINDS[kind]}: max", worst * 1000, "ms", notes="the worst run"),
        figure(
            f"{KINDS[kind]}: the supervisor's 'after the fault was seen', median",
            median(seen) * 1000 if seen else math.nan,
            "ms",
            notes="its 40306 line, counted from its own first sight of the fault (for a kill, "
            "the management link's loss, before the exit report), not from the fault; "
            "sorted: " + (_list(seen) if seen else "none logged"),
        ),
    ]


@contextlib.contextmanager
def installation(
    hosts: tuple[str, ...] = HOSTS,
    prefix: str = "bench-multihost-",
    ready: Callable[[MultiHost], None] | None = None,
    **options: Any,
) -> Iterator[MultiHost | str]:
    """The installation on a bed of ``hosts`` (``options`` for :func:`multi_host`;
    ``ready`` waits for it to settle), or why it cannot be built here. Its logs are
    kept with ``BENCH_KEEP_LOGS``."""
    keep = bool(os.environ.get("BENCH_KEEP_LOGS"))
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with contextlib.ExitStack() as stack:
            try:
                bed = stack.enter_context(TestBed(hosts))
                built = stack.enter_context(multi_host(bed, tmp, **options))
                if ready is not None:
                    ready(built)
                system: MultiHost | str = built
            except NetnsUnavailable as exc:
                system = f"network namespaces unavailable: {exc}"
            except PgClusterError as exc:
                system = f"PostgreSQL unavailable: {exc}"
            yield system
    finally:
        if keep:
            print(f"  logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_multihost() -> list[Result | Plot]:
    """:data:`RUNS` kills, host crashes and isolations on one installation; one plot."""
    with installation() as system:
        if isinstance(system, str):
            return [figure("failover across hosts", math.nan, "", notes=f"skipped: {system}")]
        runs = _runs(system)
    lease_why = f"lease-ttl {LEASE_TTL:g} s + 2 x addp-timeout {ADDP_TIMEOUT:g} s + 300 ms"
    results: list[Result | Plot] = []
    results += _figures("kill", runs["kill"], KILL_TARGET, "the agent reports the exit")
    results += _figures("crash", runs["crash"], LEASE_TARGET, lease_why)
    results += _figures("isolate", runs["isolate"], LEASE_TARGET, lease_why)
    results.append(
        plotted(
            failover_plot(
                "multihost_failover",
                "Failover across hosts (namespace bed, scs + agents, PostgreSQL): fault to the "
                "first write acknowledged by the new primary",
                {KINDS[k]: [r.failover * 1000 for r in rs] for k, rs in runs.items()},
                unit="ms",
                target=LEASE_TARGET * 1000,
                target_label=f"target, crash or isolation: median <= {LEASE_TARGET * 1000:.0f} "
                f"ms (a kill: {KILL_TARGET * 1000:.0f} ms)",
            )
        )
    )
    return results


BENCHMARKS: dict[str, Benchmark] = {"multihost": bench_multihost}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
