"""Run every benchmark module ``bench/bench_*.py``, print a summary, rewrite the docs.

A benchmark module has ``BENCHMARKS`` (see ``bench/_report.py``) and a
docstring saying what it measures (copied into the docs). This runs the
modules in name order, prints a summary table of the results and the paths of
the plots, and (re)writes ``docs/benchmarks.md`` with the machine, every
figure beside its target and, after each module's table, its plots (PNG files
in ``docs/benchmarks/``). A missed target is a figure like any other (exit
status 0); a module that crashes, or returns something else, is recorded as
MISSED and makes the exit status 1 (plots it wrote before are not shown).

Usage (from the repository root, as ``make bench`` does)::

    .venv/bin/python -m bench.run_all [--no-docs] [--quick] [module ...]

Naming modules (``bench_addp`` or ``addp``) runs only those and leaves the
docs alone unless ``--docs`` is given: their plots then go to a new temporary
folder (printed) instead of ``docs/benchmarks/``. ``--quick`` runs every
module with its smallest settings (``QUICK``) and never writes the docs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import _plots
from bench._plots import Plot
from bench._report import Result, quicken, run_benchmarks, write_markdown

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"


def discover() -> list[str]:
    """Names of the benchmark modules under ``bench/`` (``bench_*.py``), sorted."""
    return sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def about(module: object) -> str:
    """A module's docstring as markdown paragraphs (each paragraph on one line)."""
    doc = (getattr(module, "__doc__", None) or "").strip()
    return "\n\n".join(" ".join(part.split()) for part in doc.split("\n\n"))


def run_module(name: str, quick: bool = False) -> tuple[str, list[Result], list[Plot], bool]:
    """Import ``bench.<name>`` and run its benchmarks; (description, results, plots, crashed)."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    description = ""
    plots: list[Plot] = []
    try:
        module = importlib.import_module(f"bench.{name}")
        description = about(module)
        if quick:
            quicken(module)
        items = list(run_benchmarks(module))
        odd = [item for item in items if not isinstance(item, Result | Plot)]
        if odd:
            raise TypeError(f"a benchmark returned {type(odd[0]).__name__}, not Result or Plot")
        results = [item for item in items if isinstance(item, Result)]
        plots = [item for item in items if isinstance(item, Plot)]
        crashed = False
    except Exception as exc:
        traceback.print_exc()
        results = [
            Result(
                f"{name} crashed",
                float("nan"),
                "",
                "run to completion",
                False,
                f"{type(exc).__name__}: {exc}",
            )
        ]
        crashed = True
    print(f"== {name} took {time.perf_counter() - started:.1f} s", flush=True)
    return description, results, plots, crashed


def print_summary(sections: Sequence[tuple[str, str, Sequence[Result]]]) -> None:
    """Print every figure beside its target as a table (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Benchmarks", show_lines=False)
    table.add_column("Module")
    table.add_column("Figure")
    table.add_column("Measured", justify="right")
    table.add_column("Target")
    table.add_column("Status")
    styles = {"met": "green", "MISSED": "bold red", "info": "dim"}
    for module, _, results in sections:
        for r in results:
            status = f"[{styles[r.status]}]{r.status}[/]"
            table.add_row(module, r.name, r.shown, r.target or "-", status)
    Console(width=160).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks named on the command line (default: all); see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    parser.add_argument("modules", nargs="*", help="bench modules to run (default: all)")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--docs", action="store_true", help="write docs/benchmarks.md anyway")
    docs.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smallest settings, no docs")
    args = parser.parse_args(argv)
    available = discover()
    wanted = [m if m.startswith("bench_") else f"bench_{m}" for m in args.modules]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        parser.error(f"no such bench module: {', '.join(unknown)} (have {', '.join(available)})")
    names = wanted or available
    write_docs = (not wanted or args.docs) and not args.no_docs and not args.quick
    if not write_docs:
        _plots.OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="bench-plots-"))
    runs: list[tuple[str, str, list[Result], list[Plot]]] = []
    any_crashed = False
    for name in names:
        description, results, plots, crashed = run_module(name, args.quick)
        runs.append((name, description, results, plots))
        any_crashed |= crashed
    print()
    print_summary([(name, description, results) for name, description, results, _ in runs])
    for name, _, _, plots in runs:
        for plot in plots:
            shown = plot.path.relative_to(ROOT) if plot.path.is_relative_to(ROOT) else plot.path
            print(f"plot of {name}: {shown}")
    if write_docs:
        write_markdown(DOCS, [(name, text, [*rs, *ps]) for name, text, rs, ps in runs])
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 1 if any_crashed else 0


if __name__ == "__main__":
    sys.exit(main())
