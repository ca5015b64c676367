"""The summary table of a fuzz run (rich), and the figures it is made of."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tests.helpers.stats import percentile

from .runner import Report

_PORTS = ("client", "management", "control")


def latency_ms(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of ``values`` (seconds) in milliseconds; nan when empty."""
    if not values:
        return (float("nan"),) * 3
    ms = sorted(v * 1000 for v in values)
    return percentile(ms, 50), percentile(ms, 99), ms[-1]


def print_report(report: Report, console: Console | None = None) -> None:
    """Print the per-port, per-generator table, the good client, RSS and findings."""
    console = console or Console(width=170)
    rate = report.cases / report.elapsed if report.elapsed else 0.0
    table = Table(
        title=(
            f"Fuzz: {report.cases:,} cases in {report.elapsed:.0f} s ({rate:,.0f}/s), "
            f"seed {report.plan.seed}" + (" - STOPPED BY TIME" if report.timed_out else "")
        )
    )
    for col in ("Port", "Generator", "Cases", "Conns", "Closed by server", "Hangs"):
        table.add_column(col, justify="right" if col not in ("Port", "Generator") else "left")
    table.add_column("Answers by kind (most frequent first)", overflow="fold")
    for (port, gen), t in sorted(report.tallies.items(), key=lambda kv: _PORTS.index(kv[0][0])):
        answers = ", ".join(f"{k} {n:,}" for k, n in t.answers.most_common(7))
        more = len(t.answers) - 7
        table.add_row(
            port,
            gen,
            f"{t.cases:,}",
            f"{t.connections:,}",
            f"{t.closed:,}",
            f"{t.hangs}",
            answers + (f", +{more} kinds" if more > 0 else ""),
        )
    console.print(table)
    rounds, every = report.probe.rounds, report.plan.check_every
    good = Table(title=f"Good client during the run ({rounds} rounds, every {every:g} s)")
    for col in ("Port", "Answers", "p50 ms", "p99 ms", "max ms"):
        good.add_column(col, justify="left" if col == "Port" else "right")
    for port in _PORTS:
        values = report.probe.latencies[port]
        p50, p99, top = latency_ms(values)
        good.add_row(port, str(len(values)), f"{p50:.1f}", f"{p99:.1f}", f"{top:.1f}")
    console.print(good)
    mem = Table(title="Processes")
    for col in ("Process", "RSS start MiB", "RSS end MiB", "RSS peak MiB"):
        mem.add_column(col, justify="left" if col == "Process" else "right")
    w = report.watch
    for name in w.pids:
        mem.add_row(
            name,
            f"{w.rss_start.get(name, 0) / 1024:.1f}",
            f"{w.rss_last.get(name, 0) / 1024:.1f}",
            f"{w.rss_peak.get(name, 0) / 1024:.1f}",
        )
    console.print(mem)
    console.print(
        f"tracebacks found: {len(w.tracebacks)} (must be 0); control characters in log lines: "
        f"{len(w.control_lines)} (must be 0); log written: {w.log_bytes / 1e6:.2f} MB; "
        f"good-client failures: {len(report.probe.failures)}"
    )
    findings = report.findings
    if findings:
        console.print(f"[bold red]{len(findings)} FINDINGS[/]")
        for line in findings[:30]:
            console.print(f"  {line}", markup=False)
    else:
        console.print("[green]no findings[/]")
    for note in report.notes[:10]:
        console.print(f"note: {note}", markup=False)
