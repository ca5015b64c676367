"""What a chaos run found, for the simulation and the real runs alike, and its summary table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..helpers.stats import median, percentile
from .checker import Record


@dataclass
class Summary:
    """What a run of schedules on one engine found."""

    engine: str
    schedules: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    failovers: int = 0
    acked: int = 0
    requests: int = 0
    violations: list[str] = field(default_factory=list)
    failover_times: dict[str, list[float]] = field(default_factory=dict)
    #: the slowest failover of each kind and the command that replays its schedule
    slowest: dict[str, tuple[float, str]] = field(default_factory=dict)
    seconds: float = 0.0
    #: what a failover time runs to, from the fault
    timed_to: str = "first write acknowledged in a newer epoch"
    #: the :class:`Fault` field faults are counted by
    count_by: str = "target"
    #: connections each relay carried (real runs): proof the links went through them
    relayed: dict[str, int] = field(default_factory=dict)
    #: how often something the schedules are meant to reach was reached (the
    #: simulation: the failsafe, for instance)
    reached: dict[str, int] = field(default_factory=dict)

    def add(
        self, record: Record, violations: list[str], times: dict[str, list[float]], replay: str
    ) -> None:
        """Count one schedule: its faults, failovers, requests, violations, failover times."""
        self.schedules += 1
        for f in record.faults:
            key = getattr(f, self.count_by)
            self.faults[key] = self.faults.get(key, 0) + 1
        self.failovers += record.failovers
        self.acked += sum(r.outcome == "ok" and r.op == "write" for r in record.requests)
        self.requests += len(record.requests)
        for kind, values in times.items():
            self.failover_times.setdefault(kind, []).extend(values)
            if values and max(values) > self.slowest.get(kind, (-1.0, ""))[0]:
                self.slowest[kind] = (max(values), replay)
        self.violations += [f"{v}  (replay: {replay})" for v in violations]


def print_summary(summaries: Sequence[Summary]) -> None:
    """The summary table of a chaos run (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    table = Table(title="Fault injection: summary")
    table.add_column("Engine")
    table.add_column("Schedules", justify="right")
    table.add_column("Seconds", justify="right")
    table.add_column("Requests", justify="right")
    table.add_column("Acknowledged writes", justify="right")
    table.add_column("Failovers", justify="right")
    table.add_column("Violations", justify="right")
    for s in summaries:
        style = "bold red" if s.violations else "green"
        table.add_row(
            s.engine,
            str(s.schedules),
            f"{s.seconds:.0f}",
            str(s.requests),
            str(s.acked),
            str(s.failovers),
            f"[{style}]{len(s.violations)}[/]",
        )
    console.print(table)
    faults = Table(title="Faults injected, by kind")
    faults.add_column("Fault")
    for s in summaries:
        faults.add_column(s.engine, justify="right")
    for kind in sorted({k for s in summaries for k in s.faults}):
        faults.add_row(kind, *(str(s.faults.get(kind, 0)) for s in summaries))
    console.print(faults)
    times = Table(title="Failover time, from the fault")
    for column in ("Engine", "Fault", "to", "n", "median", "p99", "max"):
        numeric = column in ("n", "median", "p99", "max")
        times.add_column(column, justify="right" if numeric else "left")
    for s in summaries:
        for kind, values in sorted(s.failover_times.items()):
            times.add_row(
                s.engine,
                kind,
                s.timed_to,
                str(len(values)),
                f"{median(values):.3f} s",
                f"{percentile(values, 99):.3f} s",
                f"{max(values):.3f} s",
            )
    console.print(times)
    for s in summaries:
        for kind, (slowest, replay) in sorted(s.slowest.items()):
            console.print(f"slowest {s.engine} {kind}: {slowest:.3f} s; {replay}", highlight=False)
    reached = sorted({k for s in summaries for k in s.reached})
    if reached:
        table = Table(title="Reached by the schedules")
        table.add_column("What")
        for s in summaries:
            table.add_column(s.engine, justify="right")
        for key in reached:
            table.add_row(key, *(str(s.reached.get(key, 0)) for s in summaries))
        console.print(table)
    for s in summaries:
        for line in s.violations[:10]:
            console.print(f"[bold red]VIOLATION[/] {s.engine}: {line}", highlight=False)
