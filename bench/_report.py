"""Shared helpers of the benchmarks: a figure as a :class:`Result`, running a module, markdown.

A benchmark module ``bench/bench_*.py`` has ``BENCHMARKS``, its benchmarks by
name, each returning its figures and any PNG plots it wrote
(:class:`bench._plots.Plot`, e.g. from :func:`bench._plots.failover_plot`);
``QUICK``, the smallest settings it runs with (module constants to replace:
``--quick`` checks that it runs, its figures mean nothing); and optionally
``WARNING``, what a busy machine does to its figures. :func:`run_benchmarks`
runs them in order after noting the machine's background load, printing every
figure as soon as it is known (:func:`figure`); :func:`main` is a module's
command line (``python -m bench.bench_<x> [--quick] [name ...]``).
``python -m bench.run_all`` collects every module's figures, prints a summary
table and rewrites ``docs/benchmarks.md`` with :func:`write_markdown`, which
embeds each module's plots below its table.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench import _plots
from bench._plots import Plot
from bench.measure import background_load

#: Where the report lives; image links in it are relative to this folder.
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure beside its target.

    Attributes:
        name: what was measured, short (one table cell).
        value: the figure; ``nan`` when the benchmark could not produce it.
        unit: unit of ``value`` (``msg/s``, ``s``, ``%``, ...).
        target: the target as text, e.g. ``>= 50,000 msg/s``; empty when the
            figure is informational.
        met: whether the target was met; ``None`` for an informational figure.
        notes: how it was measured and anything that qualifies the figure.
        precision: decimals shown for ``value``.
    """

    name: str
    value: float
    unit: str
    target: str
    met: bool | None
    notes: str = ""
    precision: int = 0

    @property
    def status(self) -> str:
        """``met``, ``MISSED``, or ``info`` for a figure without a target."""
        if self.met is None:
            return "info"
        return "met" if self.met else "MISSED"

    @property
    def shown(self) -> str:
        """The value with its unit, as printed (``n/a`` when not a number)."""
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:,.{self.precision}f} {self.unit}".rstrip()


def report(result: Result) -> Result:
    """Print one figure as soon as it is known (target and status beside it); return it."""
    target = f"target {result.target}" if result.target else "no target"
    print(f"  {result.name}: {result.shown}  ({target}: {result.status})", flush=True)
    if result.notes:
        print(f"      {result.notes}", flush=True)
    return result


def figure(
    name: str,
    value: float,
    unit: str,
    target: str = "",
    met: bool | None = None,
    notes: str = "",
    precision: int = 0,
) -> Result:
    """:func:`report` a new :class:`Result` (an informational one without ``target``)."""
    return report(Result(name, value, unit, target, met, notes, precision))


def plotted(plot: Plot) -> Plot:
    """Print where a plot was written; return it."""
    print(f"  plot: {plot.path}", flush=True)
    return plot


#: One benchmark of a module: its figures and plots, in order.
Benchmark = Callable[[], Sequence[Result | Plot]]


def quicken(module: ModuleType) -> None:
    """Give ``module`` its ``QUICK`` settings (its smallest: runs, not figures)."""
    for name, value in getattr(module, "QUICK", {}).items():
        if not hasattr(module, name):
            raise AttributeError(f"{module.__name__}.QUICK names no constant {name}")
        setattr(module, name, value)


def run_benchmarks(module: ModuleType, names: Sequence[str] = ()) -> list[Result | Plot]:
    """Run the module's benchmarks (those named, default all) after noting the background load."""
    benchmarks: dict[str, Benchmark] = module.BENCHMARKS
    busy = background_load()
    print(f"  (other processes use {busy:.0f}% of one core before the start)", flush=True)
    if busy > 20:
        warning = getattr(module, "WARNING", "the figures below will suffer")
        print(f"  WARNING: the machine is not idle: {warning}", flush=True)
    results: list[Result | Plot] = []
    for name in names or list(benchmarks):
        started = time.perf_counter()
        results += benchmarks[name]()
        print(f"    ({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    return results


def main(module: ModuleType, argv: Sequence[str]) -> None:
    """A module's command line: ``[--quick] [name ...]``; plots go to a new temporary folder."""
    names = list(module.BENCHMARKS)
    parser = argparse.ArgumentParser(
        prog=f"python -m {getattr(module.__spec__, 'name', module.__name__)}",
        description=(module.__doc__ or "").split("\n", 1)[0],
    )
    parser.add_argument("names", nargs="*", help=f"of {', '.join(names)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smallest settings: does it run")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in names]
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)}")
    if args.quick:
        quicken(module)
    _plots.OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="bench-plots-"))
    results = run_benchmarks(module, args.names)
    missed = sum(isinstance(r, Result) and r.met is False for r in results)
    print(f"{sum(isinstance(r, Result) for r in results)} figures, {missed} targets missed")


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def python_speed(loops: int = 2_000_000, rounds: int = 3) -> float:
    """Nanoseconds per iteration of a pure-Python loop of additions, best of ``rounds``:
    how fast this machine runs Python today (shared machines vary by 2-3x from day
    to day, and every figure here moves with it)."""
    best = math.inf
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i
        best = min(best, time.perf_counter() - started)
    return best / loops * 1e9


def machine_info() -> dict[str, str]:
    """A short description of the machine the figures come from."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "CPU": cpu_model(),
        "Cores": f"{os.cpu_count()} (usable by this process: {usable})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "Date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Python speed": f"{python_speed():.0f} ns per iteration of a pure-Python addition "
        "loop, best of 3 when the page was written (compare runs by it: every figure moves "
        "with it)",
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _image(plot: Plot, docs_dir: Path) -> list[str]:
    """Markdown lines of one plot: the image (link relative to ``docs_dir``), its caption."""
    caption = " ".join(plot.caption.split())
    alt = caption.replace("[", "\\[").replace("]", "\\]")
    link = Path(os.path.relpath(plot.path, docs_dir)).as_posix()
    return [f"![{alt}]({link})", "", caption]


def markdown(
    sections: Sequence[tuple[str, str, Sequence[Result | Plot]]], docs_dir: Path = DOCS_DIR
) -> str:
    """The text of ``docs/benchmarks.md``.

    ``sections`` holds ``(module name, what it measures, results and plots)``
    in the order the modules ran. Every figure appears in its module's table,
    missed ones marked MISSED; the module's plots follow the table, each as an
    image linked relative to ``docs_dir`` (the folder of the markdown file,
    e.g. ``benchmarks/<name>.png``) with its caption as a line below.
    """
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench.run_all`); do not edit by hand. Every",
        "figure is shown beside its target; a target not reached is marked **MISSED**.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in machine_info().items()]
    results = [r for _, _, items in sections for r in items if isinstance(r, Result)]
    missed = [r.name for r in results if r.met is False]
    lines += [
        "",
        "## Summary",
        "",
        f"Targets met: {sum(r.met is True for r in results)}; missed: {len(missed)}"
        + (f" ({'; '.join(missed)})." if missed else "."),
    ]
    for module, about, items in sections:
        rs = [item for item in items if isinstance(item, Result)]
        plots = [item for item in items if isinstance(item, Plot)]
        lines += ["", f"## {module}", ""]
        if about:
            lines += [about, ""]
        lines += [
            "| Figure | Measured | Target | Status | Notes |",
            "|---|---:|---|---|---|",
        ]
        for r in rs:
            status = "**MISSED**" if r.met is False else r.status
            lines.append(
                f"| {_cell(r.name)} | {_cell(r.shown)} | {_cell(r.target or '–')} "
                f"| {status} | {_cell(r.notes)} |"
            )
        for plot in plots:
            lines += ["", *_image(plot, docs_dir)]
    return "\n".join(lines) + "\n"


def write_markdown(
    path: Path, sections: Sequence[tuple[str, str, Sequence[Result | Plot]]]
) -> None:
    """(Re)write ``path`` with :func:`markdown` of ``sections``, images relative to its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(sections, path.parent), encoding="utf-8")
