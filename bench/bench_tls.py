"""The cost of TLS (issue 12): write and read latency on one connection, and SIGKILL failover.

Certificates from ``trustme`` (an ECDSA P-256 CA and certificate, what
``tests/helpers/tls.py`` writes), TLS 1.3 as negotiated by Python's ``ssl``
with the machine's OpenSSL; with TLS every port and link is encrypted and
client certificates are required (the most the options ask for).

(1) Latency on one connection: a primary alone (``confserv`` on SQLite, WAL,
``synchronous=FULL``), one client of the client library; 2,000 creates one
at a time (committed and acknowledged), then 2,000 reads of one object by
dbid, without TLS and then with it. The TLS handshake itself is timed too
(connect + TLS + ADDP + register, the median of 20 connections).

(2) SIGKILL failover: the pair under ``scs -f`` (no proxy), a writer creating
DNs every 10 ms through the resilient client; the primary is SIGKILLed and
the figure is the time from the kill until the first write acknowledged by
the new primary, a few runs without TLS and with it (a new system for each
mode). Everything on 127.0.0.1, stops by itself. Run alone with
``.venv/bin/python -m bench.bench_tls [--quick] [latency|failover]``.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import trio

from bench._report import Benchmark, Result, figure, main
from confserv.client.session import open_client
from confserv.wire.tls import ClientTls
from tests.helpers.nodes import pair_nodes
from tests.helpers.stats import median, ms, percentile, summary
from tests.helpers.system import PASSWORD, System, Writer, healthy, primary_of
from tests.helpers.tls import TlsFiles, make_tls_files

#: Writes (and reads) timed on one connection, per mode.
WRITES = 2000
#: Connections timed for the handshake, per mode.
CONNECTS = 20
#: SIGKILL failovers per mode.
FAILOVERS = 3
QUICK = {"WRITES": 20, "CONNECTS": 2, "FAILOVERS": 1}
WARNING = "latencies and failover times below include the other processes' CPU use"


async def _latencies(
    port: int, tls: ClientTls | None
) -> tuple[list[float], list[float], list[float]]:
    """(connect, write, read) seconds."""
    connects: list[float] = []
    for _ in range(CONNECTS):
        start = time.perf_counter()
        async with open_client(
            [("127.0.0.1", port)], app="bench-tls", user="default", password=PASSWORD, tls=tls
        ):
            connects.append(time.perf_counter() - start)
    writes: list[float] = []
    reads: list[float] = []
    async with open_client(
        [("127.0.0.1", port)], app="bench-tls", user="default", password=PASSWORD, tls=tls
    ) as c:
        dbid = 0
        for i in range(WRITES):
            start = time.perf_counter()
            answer = await c.create("DN", {"name": f"t{i}"})
            writes.append(time.perf_counter() - start)
            dbid = int(answer["dbid"])
        for _ in range(WRITES):
            start = time.perf_counter()
            await c.read("DN", {"dbid": dbid})
            reads.append(time.perf_counter() - start)
    return connects, writes, reads


def _one_primary(tmp: Path, files: TlsFiles | None) -> tuple[list[float], ...]:
    with pair_nodes(tmp, tls=files, addp_timeout=None, verbose="standard") as pair:
        pair.first.start()

        async def go() -> tuple[list[float], ...]:
            await pair.first.wait_role("primary")
            return await _latencies(pair.first.port, None if files is None else files.client())

        return trio.run(go)


def bench_latency() -> list[Result]:
    """Benchmark 1: write, read and connect latency on one connection, without and with TLS."""
    print(f"[1] latency: {WRITES} writes and reads on one connection, plain then TLS", flush=True)
    results: list[Result] = []
    medians: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        files = make_tls_files(Path(tmp) / "certs")
        for mode, tls in (("plain", None), ("TLS", files)):
            where = Path(tmp) / mode
            where.mkdir()
            connects, writes, reads = _one_primary(where, tls)
            medians[mode] = {"write": median(writes), "read": median(reads)}
            for what, values in (("write", writes), ("read", reads), ("connect", connects)):
                results.append(
                    figure(
                        f"{what} latency, {mode}: median",
                        median(ms(values)),
                        "ms",
                        notes=f"{len(values)} one at a time: {summary(ms(values))}",
                        precision=3,
                    )
                )
                results.append(
                    figure(
                        f"{what} latency, {mode}: p99",
                        percentile(ms(values), 99),
                        "ms",
                        precision=3,
                    )
                )
    for what in ("write", "read"):
        extra = (medians["TLS"][what] - medians["plain"][what]) * 1e6
        results.append(figure(f"TLS adds to a {what} (median)", extra, "us", precision=0))
    return results


async def _failovers(system: System) -> list[float]:
    """Seconds from each SIGKILL of the primary to the new primary's first acknowledged write."""
    out: list[float] = []
    writer = Writer.for_system(system)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for _ in range(FAILOVERS):
            rows = await system.wait(healthy, timeout=60)
            old = primary_of(rows)
            new = "backup" if old == "confserv" else "confserv"
            await writer.until(len(writer.acked) + 10)
            killed = time.monotonic()
            os.kill(rows[old]["pid"], signal.SIGKILL)
            rows = await system.wait(lambda r, new=new: r[new]["role"] == "primary", timeout=60)
            epoch = int(rows[new]["epoch"])
            with trio.fail_after(60):
                while (ack := writer.first_ack(killed, system.address(new), epoch)) is None:
                    await writer.next_ack()
            out.append(ack.at - killed)
            print(f"    run {len(out)}: {old} -> {new}: {out[-1] * 1000:.0f} ms", flush=True)
            await system.wait(lambda r, old=old: healthy(r) and r[old]["role"] == "backup", 60)
        writer.stop.set()
    await writer.check(system.address(primary_of(await system.status())))
    return out


def bench_failover() -> list[Result]:
    """Benchmark 2: SIGKILL failover time without and with TLS."""
    print(f"[2] SIGKILL failover: {FAILOVERS} runs plain, then with TLS", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        files = make_tls_files(Path(tmp) / "certs")
        for mode, tls in (("plain", None), ("TLS", files)):
            where = Path(tmp) / mode
            where.mkdir()
            system = System(where, proxy=False, verbose="standard", tls=tls)
            system.start()
            try:
                runs = trio.run(_failovers, system)
            finally:
                system.stop()
            notes = f"{len(runs)} runs: " + ", ".join(f"{r * 1000:.0f}" for r in runs) + " ms"
            results.append(
                figure(f"SIGKILL failover, {mode}: median", median(ms(runs)), "ms", notes=notes)
            )
            results.append(figure(f"SIGKILL failover, {mode}: max", max(ms(runs)), "ms"))
    return results


BENCHMARKS: dict[str, Benchmark] = {"latency": bench_latency, "failover": bench_failover}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
