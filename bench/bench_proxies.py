"""Reads through proxies: does a second proxy add its own rate (issue 16)?

A primary (``[confserv]``, its backup section never started) on SQLite and two
proxies (``[proxy]`` and ``[proxy2]``, ``mode = proxy``, ``master`` = both
members' management ports), each a ``confserv`` process, all on 127.0.0.1 with
ADDP off; 100 Hosts created through the primary and read back through each
proxy before anything is timed. The load is the read load of ``bench_confserv``
(benchmark 1): a worker process of 16 clients of the client library for each
proxy, one read by dbid in flight per client, for a fixed window. One worker
reads through one proxy, then two workers each through its own proxy: every
proxy carries the same load in both, so the second proxy adds the first's whole
rate if the two share nothing. A proxy answers reads from its own cache; the
primary takes no part (its CPU is shown).

Target: two proxies serve at least 1.6x one proxy's rate where the machine has
a core for each. So that this holds on a machine of two cores, each proxy and
its worker process are pinned to a core of their own (``sched_setaffinity`` on
every thread): the first proxy and its clients on core 0, the second and its
clients on core 1, alone there. The same runs unpinned (the scheduler's free
choice: four busy processes on however many cores there are) are shown beside
them without a verdict: on two cores their ratio is the machine's, not the
proxies'. Three rounds, each measuring every case one after the other; each
figure is its best round, every round's rate in its notes.

Run alone with ``.venv/bin/python -m bench.bench_proxies [--quick] [scaling]``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from bench._report import Benchmark, Result, figure, main
from bench.confserv_clients import READ_OBJECTS, client, create_hosts
from bench.worker_procs import timed_load, workers
from tests.helpers.nodes import Node
from tests.helpers.system import (
    MEMBERS,
    PROXY,
    SECRET,
    cfgctl_init,
    free_port,
    write_confserv_conf,
)

#: The second proxy's section.
PROXY2 = "proxy2"
#: Seconds of each timed read window.
READ_SECONDS = 4.0
#: Read clients of each proxy, all in one worker process.
CLIENTS_PER_PROXY = 16
#: Timed rounds; each measures every case (one proxy, two; pinned, unpinned) in turn.
ROUNDS = 3
#: Target: two proxies' rate over one proxy's, each proxy with a core of its own.
SCALE_TARGET = 1.6
#: The cores this process may run on (a container's cpuset may hold fewer than the
#: machine's): the unpinned runs use them all; proxy ``i`` of a pinned run and its
#: clients get ``ALLOWED[i]``.
ALLOWED = sorted(os.sched_getaffinity(0))
#: Time the proxies get to have every Host in their cache.
CACHE_TIMEOUT = 30.0
#: The smallest settings (``--quick``).
QUICK = {"READ_SECONDS": 0.5, "CLIENTS_PER_PROXY": 2, "ROUNDS": 1}
WARNING = "the rates below will be low"


@dataclass(frozen=True)
class Installation:
    """The running primary and the two proxies."""

    primary: Node
    proxies: tuple[Node, Node]


@contextmanager
def installation(directory: Path) -> Iterator[Installation]:
    """Write and initialise the file, start the primary and both proxies; stop them on exit."""
    ports = {s: (free_port(), free_port()) for s in (*MEMBERS, PROXY)}
    second = (free_port(), free_port())
    masters = ",".join(f"127.0.0.1:{ports[s][1]}" for s in MEMBERS)
    conf = directory / "confserv.conf"
    write_confserv_conf(
        conf,
        ports,
        addp_timeout=None,
        verbose="standard",
        extra_conf=(
            f"[{PROXY2}]\nmode = proxy\nport = {second[0]}\nmanagement-port = {second[1]}\n"
            f"management-secret = {SECRET}\nmaster = {masters}\n"
        ),
    )
    cfgctl_init(conf)
    primary = Node(conf, MEMBERS[0], *ports[MEMBERS[0]], directory / "primary.log")
    proxies = (
        Node(conf, PROXY, *ports[PROXY], directory / "proxy.log"),
        Node(conf, PROXY2, *second, directory / "proxy2.log"),
    )
    try:
        primary.start()
        trio.run(primary.wait_role, "primary")
        for proxy in proxies:
            proxy.start()
            trio.run(proxy.wait_role, "proxy")
        yield Installation(primary, proxies)
    finally:
        for node in (*proxies, primary):
            node.stop()


async def wait_cached(port: int, name: str, timeout: float) -> None:
    """Read Host ``name`` through the proxy on ``port`` until it is there."""
    with trio.fail_after(timeout):
        async with client(port, "bench-cache-check") as c:
            while True:  # polled: the proxy tells nobody when its cache has caught up
                if await c.read("Host", {"name": name}):
                    return
                await trio.sleep(0.02)


@dataclass(frozen=True)
class Round:
    """One timed window: reads per second and the CPU seconds of each process."""

    rate: float
    wall: float
    proxy_cpu: float
    primary_cpu: float
    client_cpu: float
    machine_cpu: float


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of process ``pid`` (``/proc/PID/task``) on ``cores`` only."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(task), cores)


def timed_round(inst: Installation, proxies: int, pinned: bool) -> Round:
    """One read worker of :data:`CLIENTS_PER_PROXY` clients on each of the first
    ``proxies`` proxies; with ``pinned``, proxy ``i`` and its worker on core
    ``ALLOWED[i]``, otherwise every process free to run on every allowed core."""
    every = set(ALLOWED)
    serving = inst.proxies[:proxies]
    args = [
        ["read-worker", str(proxy.port), str(CLIENTS_PER_PROXY), str(READ_SECONDS), f"p{i}-"]
        for i, proxy in enumerate(serving)
    ]
    for i, proxy in enumerate(inst.proxies):
        pin(proxy.pid, {ALLOWED[i]} if pinned else every)
    with workers(args) as started:
        for i, worker in enumerate(started):
            pin(worker.proc.pid, {ALLOWED[i]} if pinned else every)
        pids: dict[str, int | None] = {"primary": inst.primary.pid}
        pids |= {f"proxy{i}": proxy.pid for i, proxy in enumerate(inst.proxies)}
        runs, _, used = timed_load(started, pids)
    return Round(
        rate=sum(r.count for r in runs) / max(r.wall for r in runs),
        wall=max(r.wall for r in runs),
        proxy_cpu=sum(used[f"proxy{i}"] for i in range(proxies)),
        primary_cpu=used["primary"],
        client_cpu=sum(r.cpu for r in runs),
        machine_cpu=used["machine"],
    )


def _describe(best: Round, rounds: Sequence[Round], proxies: str) -> str:
    def core(cpu: float) -> str:
        return f"{cpu / best.wall * 100:.0f}%"

    return (
        f"best of {len(rounds)} rounds ({', '.join(f'{r.rate:,.0f}' for r in rounds)}/s); "
        f"reads by dbid through {proxies}, a worker process of {CLIENTS_PER_PROXY} clients "
        f"on each, one read in flight per client, {READ_SECONDS:g} s; CPU as % of one core "
        f"in that round: proxies {core(best.proxy_cpu)}, primary {core(best.primary_cpu)}, "
        f"client processes {core(best.client_cpu)}, machine {core(best.machine_cpu)}"
    )


def bench_scaling() -> list[Result]:
    """Reads through one proxy and through two, pinned and unpinned, :data:`ROUNDS`
    times; the best round of each case."""
    cores = len(ALLOWED)
    print(
        f"[1] reads through proxies: a worker process of {CLIENTS_PER_PROXY} clients per "
        f"proxy, {READ_SECONDS:g} s windows; one proxy, then two, pinned (a core each) and "
        f"unpinned; {ROUNDS} rounds ({cores} cores here)",
        flush=True,
    )
    cases = [(1, True), (2, True), (1, False), (2, False)]
    rounds: dict[tuple[int, bool], list[Round]] = {case: [] for case in cases}
    with (
        tempfile.TemporaryDirectory(prefix="bench-proxies-") as tmp,
        installation(Path(tmp)) as inst,
    ):
        trio.run(create_hosts, inst.primary.port, READ_OBJECTS)
        for proxy in inst.proxies:
            last = f"bench-host-{READ_OBJECTS - 1}"
            trio.run(wait_cached, proxy.port, last, CACHE_TIMEOUT)
        if cores < len(inst.proxies):
            cases = cases[2:]  # nothing to pin to
        for _ in range(ROUNDS):
            for proxies, pinned in cases:
                rounds[proxies, pinned].append(timed_round(inst, proxies, pinned))
    best = {case: max(got, key=lambda r: r.rate) for case, got in rounds.items() if got}
    results: list[Result] = []
    for pinned in (True, False):
        if (1, pinned) not in best:
            continue
        one, two = best[1, pinned], best[2, pinned]
        how = "each proxy and its clients pinned to a core of their own" if pinned else "unpinned"
        results += [
            figure(
                f"Reads by dbid/s through one proxy, {how}",
                one.rate,
                "req/s",
                notes=_describe(one, rounds[1, pinned], "one proxy"),
            ),
            figure(
                f"Reads by dbid/s through two proxies, {how}",
                two.rate,
                "req/s",
                notes=_describe(two, rounds[2, pinned], "two proxies"),
            ),
        ]
        ratio = two.rate / one.rate
        if pinned:
            results.append(
                figure(
                    "Reads through two proxies ÷ one proxy, a core for each",
                    ratio,
                    "x",
                    f">= {SCALE_TARGET:g} x",
                    ratio >= SCALE_TARGET,
                    f"{two.rate:,.0f} / {one.rate:,.0f} reads/s, best rounds; proxy i and the "
                    f"process of its {CLIENTS_PER_PROXY} clients on core "
                    f"{' / '.join(map(str, ALLOWED[:2]))}, nothing else pinned there",
                    precision=2,
                )
            )
        else:
            results.append(
                figure(
                    "Reads through two proxies ÷ one proxy, unpinned",
                    ratio,
                    "x",
                    notes=f"{two.rate:,.0f} / {one.rate:,.0f} reads/s, best rounds; {cores} "
                    "cores for the proxies, their client processes and everything else: with "
                    "fewer than four the ratio is the machine's",
                    precision=2,
                )
            )
    if not results:
        results.append(
            figure("Reads through two proxies ÷ one proxy", float("nan"), "x", notes="no runs")
        )
    return results


BENCHMARKS: dict[str, Benchmark] = {"scaling": bench_scaling}


if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
