"""Run every benchmark module ``bench/bench_*.py``, print a summary, rewrite the docs.

A benchmark module exposes ``run() -> list[Result]`` (see ``bench/_report.py``)
and a docstring saying what it measures (copied into the docs). This script runs
them in name order, prints a summary table and (re)writes
``docs/benchmarks.md`` with the machine and every figure beside its target.
A missed target is a figure like any other (exit status 0); a module that
crashes is recorded as MISSED and makes the exit status 1.

Usage (from the repository root, as ``make bench`` does)::

    .venv/bin/python bench/run_all.py [--no-docs] [module ...]

Naming modules (``bench_addp`` or ``addp``) runs only those and leaves the
docs alone unless ``--docs`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._report import Result, write_markdown  # noqa: E402

BENCH_DIR = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"


def discover() -> list[str]:
    """Names of the benchmark modules under ``bench/`` (``bench_*.py``), sorted."""
    return sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def about(module: object) -> str:
    """A module's docstring as markdown paragraphs (each paragraph on one line)."""
    doc = (getattr(module, "__doc__", None) or "").strip()
    return "\n\n".join(" ".join(part.split()) for part in doc.split("\n\n"))


def run_module(name: str) -> tuple[str, list[Result], bool]:
    """Import ``bench.<name>`` and call its ``run()``; (description, results, crashed)."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    description = ""
    try:
        module = importlib.import_module(f"bench.{name}")
        description = about(module)
        results = list(module.run())
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
    return description, results, crashed


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="bench modules to run (default: all)")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--docs", action="store_true", help="write docs/benchmarks.md anyway")
    docs.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    available = discover()
    wanted = [m if m.startswith("bench_") else f"bench_{m}" for m in args.modules]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        parser.error(f"no such bench module: {', '.join(unknown)} (have {', '.join(available)})")
    names = wanted or available
    sections: list[tuple[str, str, list[Result]]] = []
    any_crashed = False
    for name in names:
        description, results, crashed = run_module(name)
        sections.append((name, description, results))
        any_crashed |= crashed
    print()
    print_summary(sections)
    if (not wanted or args.docs) and not args.no_docs:
        write_markdown(DOCS, sections)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 1 if any_crashed else 0


if __name__ == "__main__":
    sys.exit(main())
