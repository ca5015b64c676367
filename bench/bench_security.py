"""Security: RSS and good-client latency under unauthenticated crowds and 4 MiB floods; failover.

Every benchmark runs the whole system as an operator would (``tests/helpers/system.py``'s
:class:`System`: the pair ``confserv`` and ``backup`` on SQLite under ``scs -f``, no proxy,
ADDP at 1 s, ``auth-timeout`` 5 s). The supervisor and the servers start with a soft
open-file limit of 1,024 (the usual default; the servers raise their own to the hard
limit, the supervisor does not). The crowds and floods run in a process of their own
(``bench/security_load.py``), so that their event loop is not the good client's.

(1) A crowd of 1,000 unauthenticated connections on each of the primary's client and
management ports and the supervisor's control port at once (3,000): each connection
sends a HELLO and nothing more, and reconnects ``CROWD_RETRY`` (1 s) after the server
closes it (the caps' refusals, ADDP, the authentication deadline), so the crowd never
thins for ``WINDOW`` seconds (the connections opened per second are in the notes).
Run twice: the crowd connecting from 127.0.0.2 (another host, as an attacker is), then
from 127.0.0.1, the good client's own address. Meanwhile the good client (127.0.0.1)
writes and reads on one registered connection every 50 ms, and every 0.5 s logs in
afresh and authenticates on the management and control ports (``status``); each answer
is timed and each refusal counted. Refusals have a target (0) only in the first run: a
fresh connection from the crowd's own address is one of the crowd's to the server until
it authenticates (see ``addp.transport.admission``). RSS (``/proc/<pid>/status``
VmRSS) of the primary and of ``scs`` is sampled every 0.1 s: growth = peak - before.

(2) A 4 MiB-frame flood for ``WINDOW`` seconds: four unauthenticated connections on each
of the three ports sending HELLO then 4 MiB MESSAGE frames back to back, reconnecting
when refused, and two registered client connections sending 4 MiB unknown-op requests
without reading the answers. Same good client, same RSS figures.

(3) Failover under a crowd: ``FAILOVER_RUNS`` SIGKILLs of the primary with a writer
(``open_resilient_client``, tight loop), first without a crowd, then with 1,000
unauthenticated connections on the supervisor's control port and 1,000 on each
server's management port. Failover time = SIGKILL to the first write acknowledged at a
higher epoch (by either server: when the supervisor cannot promote the backup, the
killed server, restarted, takes the lease back itself); whether the supervisor promoted
the backup (its 40306 line); restart = SIGKILL to the supervisor's "healthy again" line
(40309: the killed server restarted and linked).

Run alone with ``.venv/bin/python -m bench.bench_security [--quick] [crowd|flood|failover]``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from addp.transport.admission import EVICT_MIN_AGE
from bench._report import Benchmark, Result, figure, main
from bench.measure import log_stamps
from bench.security_system import (
    Good,
    Load,
    address_arg,
    attackers,
    good_client,
    ms_summary,
    rss_kib,
    running_system,
    sample_rss,
    server_pid,
)
from tests.helpers.stats import median, percentile
from tests.helpers.system import (
    MEMBERS,
    PASSWORD,
    Rows,
    System,
    Writer,
    healthy,
    primary_of,
)

#: Unauthenticated connections per port, and how long each crowd or flood lasts.
CROWD = 1000
WINDOW = 20.0
#: Flooders per port (unauthenticated) and registered flooders on the client port.
FLOODERS = 4
REGISTERED_FLOODERS = 2
#: SIGKILL failovers without, then with, the crowd.
FAILOVER_RUNS = 3
#: Targets (issue 12).
RSS_TARGET_MIB = 64.0
LATENCY_TARGET_MS = 100.0
#: The soft open-file limit the system starts with.
SYSTEM_NOFILE = 1024
QUICK = {"CROWD": 30, "WINDOW": 3.0, "FLOODERS": 1, "REGISTERED_FLOODERS": 1, "FAILOVER_RUNS": 1}
WARNING = "latencies and failover times suffer on a busy machine"
EV_HEALTHY = 40309
#: Pause of a crowd member after the server closed it, before it connects again.
CROWD_RETRY = 1.0
#: Where the first crowd connects from: a loopback address that stands for another host.
CROWD_SOURCE = "127.0.0.2"


async def _under_load(
    label: str,
    load_args: Callable[[System, str], list[str]],
    source: str | None = None,
    shares_address: bool = False,
) -> list[Result]:
    """The figures of one crowd or flood, its connections made from ``source`` (None:
    127.0.0.1, the good client's own address); ``shares_address``: a crowd there, whose
    refusals of the good client are shown without a target."""
    async with running_system(SYSTEM_NOFILE, CROWD) as system:
        rows = await system.status()
        primary = primary_of(rows)
        pids = {"primary": server_pid(system, primary), "scs": system.pid}
        before = {name: rss_kib(pid) for name, pid in pids.items()}
        peak = dict(before)
        load, good, stop = Load(), Good(), trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_rss, pids, peak, stop)
            await nursery.start(good_client, system, primary, good, stop)
            async with attackers(load_args(system, primary), load, CROWD_RETRY, source):
                loaded = time.monotonic()
                await trio.sleep(WINDOW)
            stop.set()
        await trio.sleep(6)  # past the authentication deadline: what is still held
        after = {name: rss_kib(pid) for name, pid in pids.items()}
        alive = (
            rss_kib(pids["primary"]) > 0 and system.proc is not None and system.proc.poll() is None
        )
    growth = {n: (peak[n] - before[n]) / 1024 for n in pids}
    lat = [v for k in ("client", "login", "management", "control") for v in good.latency[k]]
    worst = max(lat, default=float("nan")) * 1000
    p99 = percentile([v * 1000 for v in lat], 99)
    steady = [v * 1000 for t, v in good.series if t >= loaded + 2.0]
    worst_by_second = [
        max((v for t, v in good.series if loaded + i <= t < loaded + i + 1), default=0.0) * 1000
        for i in range(int(WINDOW))
    ]
    refused = sum(good.refused.values())
    how = ", ".join(f"{k} {v:,}" for k, v in sorted(load.counts.items()))
    if load.counts["opened"]:
        how += f" ({load.counts['opened'] / WINDOW:,.0f} connections opened per second)"
    per_port = "; ".join(f"{k}: {ms_summary(v)}" for k, v in good.latency.items())
    why = "; ".join(f"{k}: {n} ({good.reasons.get(k, '')})" for k, n in good.refused.items())
    if shares_address:
        why = (why or "none") + (
            "; no target: the crowd shares the good client's address, so a fresh "
            "connection of the good client is one more of the crowd's until it "
            f"authenticates, and places turn over once per {EVICT_MIN_AGE:g} s "
            "(EVICT_MIN_AGE) while the crowd arrives about a thousand times a second"
        )
    refusals = figure(
        f"{label}: good client's requests refused or failed",
        refused,
        f"of {refused + len(lat)}",
        "" if shares_address else "0",
        None if shares_address else refused == 0,
        why or "none",
    )
    return [
        figure(
            f"{label}: primary's RSS growth",
            growth["primary"],
            "MiB",
            f"<= {RSS_TARGET_MIB:g} MiB",
            growth["primary"] <= RSS_TARGET_MIB,
            f"peak - before over {WINDOW:g} s: {before['primary'] / 1024:.0f} -> "
            f"{peak['primary'] / 1024:.0f} MiB, {after['primary'] / 1024:.0f} MiB 6 s after; "
            f"load: {how}; most connections held at once {load.open_max:,}; "
            f"processes alive: {alive}",
            precision=1,
        ),
        figure(
            f"{label}: supervisor's RSS growth",
            growth["scs"],
            "MiB",
            f"<= {RSS_TARGET_MIB:g} MiB",
            growth["scs"] <= RSS_TARGET_MIB,
            f"{before['scs'] / 1024:.0f} -> {peak['scs'] / 1024:.0f} MiB, "
            f"{after['scs'] / 1024:.0f} MiB 6 s after",
            precision=1,
        ),
        figure(
            f"{label}: good client, p99 of every answer",
            p99,
            "ms",
            f"<= {LATENCY_TARGET_MS:g} ms",
            p99 <= LATENCY_TARGET_MS,
            f"max {worst:.1f} ms; {per_port}; worst answer in each second of the load: "
            + ", ".join(f"{w:.0f}" for w in worst_by_second)
            + " ms",
            precision=1,
        ),
        figure(
            f"{label}: good client, p99 from 2 s into the load",
            percentile(steady, 99),
            "ms",
            f"<= {LATENCY_TARGET_MS:g} ms",
            percentile(steady, 99) <= LATENCY_TARGET_MS,
            f"{len(steady)} answers, max {max(steady, default=float('nan')):.1f} ms (the load's "
            "first 2 s left out: the crowd connecting at once)",
            precision=1,
        ),
        refusals,
    ]


def on_three_ports(system: System, primary: str, flag: str, count: int) -> list[str]:
    """The attackers' arguments: ``flag count address`` for the primary's client and
    management ports and the supervisor's control port."""
    args = []
    for address in (
        system.address(primary),
        ("127.0.0.1", system.management_ports[primary]),
        ("127.0.0.1", system.control_port),
    ):
        args += [flag, str(count), address_arg(address)]
    return args


def bench_crowd() -> list[Result]:
    """Benchmark 1: 1,000 unauthenticated connections on each of the three ports, from
    another address than the good client's (another host), then from its own."""
    print(
        f"[1] {CROWD} unauthenticated connections on each port for {WINDOW:g} s, from "
        f"{CROWD_SOURCE} (another host), then from 127.0.0.1 (the good client's address)",
        flush=True,
    )

    def start(system: System, primary: str) -> list[str]:
        return on_three_ports(system, primary, "--hold", CROWD)

    label = f"{CROWD:,} unauthenticated x 3 ports"
    return [
        *trio.run(_under_load, f"{label} from {CROWD_SOURCE}", start, CROWD_SOURCE),
        *trio.run(_under_load, f"{label} from the good client's address", start, None, True),
    ]


def bench_flood() -> list[Result]:
    """Benchmark 2: 4 MiB frames before and after authentication."""
    print(f"[2] 4 MiB-frame flood for {WINDOW:g} s", flush=True)

    def start(system: System, primary: str) -> list[str]:
        args = on_three_ports(system, primary, "--flood", FLOODERS)
        registered = ["--registered", str(REGISTERED_FLOODERS)]
        return [*args, *registered, address_arg(system.address(primary)), PASSWORD]

    return trio.run(_under_load, "4 MiB-frame flood", start)


@dataclass(frozen=True, slots=True)
class Kill:
    """One SIGKILL: seconds to the first write acknowledged at a higher epoch (by either
    server), whether the supervisor promoted the backup (else the restarted server took
    the lease back itself), and seconds to the supervisor's 'healthy again' line."""

    to_ack: float | None
    promoted: bool
    to_healthy: float | None


async def _failovers(system: System, writer: Writer, runs: int) -> list[Kill]:
    out = []
    for _ in range(runs):
        rows = await _healthy_again(system)
        old = primary_of(rows)
        new = next(m for m in MEMBERS if m != old)
        epoch = int(rows[old]["epoch"])
        await writer.until(len(writer.acked) + 20)
        writer.tight = True
        pid = server_pid(system, old)
        wall, t0 = time.time(), time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ack = None
        with trio.move_on_after(30):
            while ack is None:
                await writer.next_ack()
                ack = next(
                    (a for a in writer.acks if a.at > t0 and a.epoch > epoch),
                    None,
                )
        writer.tight = False
        healed = None
        with trio.move_on_after(60):
            while healed is None:
                stamps = log_stamps(system.log(), EV_HEALTHY, wall)
                healed = min((s for s in stamps if s >= wall), default=None)
                await trio.sleep(0.1)
        promoted = any(
            f"'{new}' is primary at epoch" in line
            for line in system.log().splitlines()
            if any(t >= wall - 0.001 for t in log_stamps(line, 40306, wall))
        )
        out.append(
            Kill(
                None if ack is None else ack.at - t0,
                promoted,
                None if healed is None else healed - wall,
            )
        )
    return out


async def _healthy_again(system: System) -> Rows:
    """The status once healthy; through the crowded control port, so retried."""
    with trio.fail_after(120):
        while True:
            with contextlib.suppress(Exception):
                return await system.wait(healthy, timeout=10)
            await trio.sleep(0.5)


async def _failover_main() -> tuple[list[Kill], list[Kill], Load]:
    async with running_system(SYSTEM_NOFILE, CROWD) as system:
        writer = Writer.for_system(system)
        load = Load()
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            calm = await _failovers(system, writer, FAILOVER_RUNS)
            args = ["--hold", str(CROWD), address_arg(("127.0.0.1", system.control_port))]
            for m in MEMBERS:
                args += [
                    "--hold",
                    str(CROWD),
                    address_arg(("127.0.0.1", system.management_ports[m])),
                ]
            async with attackers(args, load, CROWD_RETRY):
                await trio.sleep(2)
                crowded = await _failovers(system, writer, FAILOVER_RUNS)
            writer.stop.set()
    return calm, crowded, load


def bench_failover() -> list[Result]:
    """Benchmark 3: SIGKILL failover and restart, without and with a crowd."""
    print(
        f"[3] {FAILOVER_RUNS} SIGKILL failovers, then {FAILOVER_RUNS} under "
        f"{CROWD} x 3 unauthenticated",
        flush=True,
    )
    calm, crowded, load = trio.run(_failover_main)
    out = []
    for label, kills in (
        ("no crowd", calm),
        (f"{CROWD:,} unauthenticated on control + both management ports", crowded),
    ):
        acks = [math.inf if k.to_ack is None else k.to_ack * 1000 for k in kills]
        heals = [k.to_healthy for k in kills if k.to_healthy is not None]
        promoted = sum(k.promoted for k in kills)
        crowd = ", ".join(f"{k} {v:,}" for k, v in sorted(load.counts.items()))
        out.append(
            figure(
                f"SIGKILL, {label}: kill to the first write at a higher epoch, median",
                median(acks),
                "ms",
                "<= 250 ms (bench_scs's target)",
                median(acks) <= 250,
                f"{len(kills)} runs: "
                + ", ".join("never" if math.isinf(a) else f"{a:.0f}" for a in acks)
                + " ms (within 30 s)"
                + (f"; crowd: {crowd}" if kills is crowded else ""),
            )
        )
        out.append(
            figure(
                f"SIGKILL, {label}: runs where the supervisor promoted the backup",
                promoted,
                f"of {len(kills)}",
                f"{len(kills)}",
                promoted == len(kills),
                "the supervisor's 40306 line naming the backup; otherwise the killed server "
                "was restarted and took the lease back itself (its pair had no primary "
                "until then)",
            )
        )
        out.append(
            figure(
                f"SIGKILL, {label}: kill to the pair healthy again (restarted), median",
                median(heals) if heals else float("nan"),
                "s",
                notes=f"the supervisor's 40309 line; {len(heals)} of {len(kills)} runs "
                "healed within 60 s: " + ", ".join(f"{h:.2f}" for h in heals) + " s",
                precision=2,
            )
        )
    return out


BENCHMARKS: dict[str, Benchmark] = {
    "crowd": bench_crowd,
    "flood": bench_flood,
    "failover": bench_failover,
}


if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
