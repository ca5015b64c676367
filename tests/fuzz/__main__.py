"""``python -m tests.fuzz``: fuzz the three ports of a real pair under ``scs -f``; one table.

Usage (``make fuzz`` runs the first)::

    .venv/bin/python -m tests.fuzz --cases 1000000 --seed 12 --minutes 30
    .venv/bin/python -m tests.fuzz --cases 5000 --seed 1 --minutes 2   # a quick look

Starts the pair (``confserv`` and ``backup`` on SQLite) and its supervisor
in a temporary folder, fuzzes the primary's client and management ports and
the supervisor's control port (see :mod:`tests.fuzz.runner`), prints the
summary table (per port and generator: cases, connections, closes by the
server, answers by kind; the good client's latency per port; RSS; findings)
and exits 1 when anything was found: a traceback or an unescaped control
character in a log, a process gone, a hang, a good client refused.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trio

from .checks import start_system
from .report import print_report
from .runner import Plan, Report, run


def raise_open_files() -> None:
    """The soft open-file limit up to the hard one (the fuzzer opens many connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def fuzz(plan: Plan, tmp: Path) -> Report:
    """Start the system in ``tmp``, fuzz it by ``plan``, stop it."""
    system = await start_system(tmp)
    try:
        rows = await system.status()
        primary = next(s for s, r in rows.items() if r["role"] == "primary")
        return await run(system, primary, plan)
    finally:
        system.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=30.0, help="stop after this long")
    parser.add_argument("--fresh-share", type=float, default=0.1, help="cases on a connection each")
    parser.add_argument("--workers", type=int, default=4, help="fresh-connection workers")
    parser.add_argument("--sessions", type=int, default=2, help="registered sessions")
    parser.add_argument("--batch", type=int, default=32, help="requests per session batch")
    parser.add_argument("--keep", action="store_true", help="keep the system's folder")
    args = parser.parse_args(argv)
    raise_open_files()
    plan = Plan(
        cases=args.cases,
        seed=args.seed,
        minutes=args.minutes,
        fresh_share=args.fresh_share,
        workers=args.workers,
        sessions=args.sessions,
        batch=args.batch,
    )
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-"))
    report = trio.run(fuzz, plan, tmp)
    print_report(report)
    print(f"system folder: {tmp}" + ("" if args.keep else " (logs kept for reading)"))
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
