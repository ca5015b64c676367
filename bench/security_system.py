"""The security benchmark's system, attackers and good client (``bench/bench_security.py``).

:func:`running_system` starts the pair under ``scs -f`` with the usual open-file
limit; :func:`attackers` runs ``bench/security_load.py`` (the crowds and floods) in a
process of its own for the length of a block; :func:`good_client` times a
well-behaved client on every port meanwhile, and :func:`sample_rss` follows the
processes' resident memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from bench.measure import raise_open_file_limit
from bench.scs_failover import SCS_LINES
from confserv.client.session import open_client, open_control, open_management
from tests.helpers.stats import median, percentile
from tests.helpers.system import CONTROL_SECRET, PASSWORD, SECRET, System, healthy


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_pid(system: System, section: str) -> int:
    """The pid of ``section``'s running server process (its command line names our files).

    Not its shim's (``python -m lca.shim ... -- confserv -s ... -c ...``), whose command
    line holds the server's: a SIGKILL of the shim leaves the server running, and the
    benchmark then measured a failover that never happened.
    """
    want = f"-s\0{section}\0-c\0{system.conf}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if want in cmdline and b"lca.shim" not in cmdline:
                    return int(entry)
    raise RuntimeError(f"no process of [{section}]")


@contextlib.asynccontextmanager
async def running_system(nofile: int, crowd: int) -> AsyncIterator[System]:
    """The pair under ``scs -f`` started with a soft limit of ``nofile`` open files,
    healthy; this process may then open ``crowd`` connections per port."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    system = System(
        Path(tempfile.mkdtemp(prefix="bench-security-")), proxy=False, scs_lines=SCS_LINES
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, soft), hard))
    try:
        system.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    raise_open_file_limit(min(hard, 4 * crowd + 2000))
    try:
        await system.wait(healthy, timeout=60)
        yield system
    finally:
        system.stop()


@dataclass
class Load:
    """What the attackers' process did (``bench/security_load.py``)."""

    counts: Counter[str] = field(default_factory=Counter)
    open_max: int = 0


def address_arg(address: tuple[str, int]) -> str:
    """``host:port``, as ``bench/security_load.py`` takes an address."""
    return f"{address[0]}:{address[1]}"


@contextlib.asynccontextmanager
async def attackers(
    args: list[str], load: Load, retry: float, source: str | None = None
) -> AsyncIterator[None]:
    """The crowds and floods of ``args`` in their own process, every connection from
    ``source`` (None: the kernel's choice, 127.0.0.1 like the good client), from 1 s
    after the start (its imports) until the block ends; what they did into ``load``."""
    command = [sys.executable, "-m", "bench.security_load", "--seconds", "3600"]
    command += ["--retry", f"{retry:g}", *(["--source", source] if source else []), *args]
    proc = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        await trio.sleep(1.0)
        yield
    finally:
        with trio.CancelScope(shield=True), trio.fail_after(60):
            proc.send_signal(signal.SIGTERM)
            out = b""
            while chunk := await proc.stdout.receive_some():
                out += chunk
            await proc.wait()
            if out.strip():
                done = json.loads(out.strip().splitlines()[-1])
                load.counts.update(done["counts"])
                load.open_max = int(done["open_max"])


@dataclass
class Good:
    """The good client's timed answers (seconds) and refusals, per port."""

    latency: dict[str, list[float]] = field(
        default_factory=lambda: {"client": [], "login": [], "management": [], "control": []}
    )
    refused: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)
    #: (when it was asked, ``time.monotonic()``; latency) of every answer.
    series: list[tuple[float, float]] = field(default_factory=list)


async def _timed(good: Good, port: str, call: Callable[[], Awaitable[object]]) -> None:
    started = time.monotonic()
    try:
        with trio.fail_after(10):
            await call()
        good.latency[port].append(time.monotonic() - started)
        good.series.append((started, time.monotonic() - started))
    except Exception as exc:  # a refusal is a figure: counted, its text kept
        good.refused[port] += 1
        good.reasons.setdefault(port, f"{type(exc).__name__}: {exc}"[:160])


async def good_client(
    system: System,
    primary: str,
    good: Good,
    stop: trio.Event,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write+read every 50 ms on one connection (registered before the load starts);
    a fresh login, management and control authentication every 0.5 s."""
    address = system.address(primary)
    mport = system.management_ports[primary]

    async def login() -> None:
        async with open_client([address], app="login", user="default", password=PASSWORD) as c:
            await c.status()

    async def management() -> None:
        async with open_management("127.0.0.1", mport, SECRET, timeout=5) as m:
            await m.status()

    async def control() -> None:
        async with open_control(system.control_port, CONTROL_SECRET, timeout=5) as m:
            await m.status()

    async with open_client([address], app="good", user="default", password=PASSWORD) as c:
        dn = await c.create("DN", {"name": f"probe{time.monotonic_ns()}"})
        task_status.started()
        n = 0
        async with trio.open_nursery() as nursery:

            async def slow() -> None:
                while not stop.is_set():
                    for port, call in (
                        ("login", login),
                        ("management", management),
                        ("control", control),
                    ):
                        await _timed(good, port, call)
                    await trio.sleep(0.5)

            nursery.start_soon(slow)
            while not stop.is_set():
                n += 1
                delta = {"number": str(n)}
                await _timed(good, "client", partial(c.update, "DN", dn["dbid"], delta))
                await _timed(good, "client", partial(c.read, "DN", {"dbid": dn["dbid"]}))
                await trio.sleep(0.05)


async def sample_rss(pids: dict[str, int], peak: dict[str, int], stop: trio.Event) -> None:
    """Peak VmRSS of each process, sampled every 0.1 s."""
    while not stop.is_set():
        for name, pid in pids.items():
            peak[name] = max(peak.get(name, 0), rss_kib(pid))
        await trio.sleep(0.1)


def ms_summary(values: list[float]) -> str:
    """``p50 / p99 / max ms (n)`` of ``values`` in seconds."""
    if not values:
        return "no answers"
    ms = sorted(v * 1000 for v in values)
    p50, p99 = median(ms), percentile(ms, 99)
    return f"p50 {p50:.1f}, p99 {p99:.1f}, max {ms[-1]:.1f} ms ({len(ms)} answers)"
