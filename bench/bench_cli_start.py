"""How fast the command-line tools start (issue 15: "the command-line tools start in under
300 ms (no SQLAlchemy import for a status call)").

Each command is run 10 times as an operator runs it (the console script in
``.venv/bin``, a new interpreter each time, its output thrown away); the
figure is the median wall time from the start of the process to its exit.
``--version`` and ``--help`` import typer and the option tables only (no
trio, rich, yaml, nor the store: tests/confserv/test_cli_imports.py);
``cfgctl status`` to a port where nothing listens is informational: the
connection needs trio, and typer's value checks import pydantic (typer 0.29).
The interpreter's own start (``python -c pass``) is shown for scale. Run alone
with ``.venv/bin/python -m bench.bench_cli_start [--quick]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._report import Benchmark, Result, figure, main
from tests.helpers.system import free_port

BIN = Path(sys.executable).parent
#: Runs of each command; the figure is their median.
RUNS = 10
QUICK = {"RUNS": 2}
TARGET_MS = 300.0
WARNING = "start times grow with the other processes' CPU use"

#: The commands with a target, as typed.
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("cfgctl", "--version"),
    ("cfgctl", "status", "--help"),
    ("confserv", "--version"),
    ("lca", "--version"),
    ("scs", "--version"),
    ("scs", "status", "--help"),
)


def start_times(argv: list[str], env: dict[str, str]) -> list[float]:
    """Seconds from spawn to exit of ``argv``, ``RUNS`` times."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        times.append(time.perf_counter() - started)
    return times


def _notes(times: list[float]) -> str:
    return f"{len(times)} runs, {min(times) * 1000:.0f} to {max(times) * 1000:.0f} ms"


def bench_start() -> list[Result]:
    """The median start of each command, beside the 300 ms target."""
    env = {**os.environ, "CFG_SECRET": "bench", "COLUMNS": "100"}
    results: list[Result] = []
    base = start_times([sys.executable, "-c", "pass"], env)
    results.append(
        figure("python -c pass: median", statistics.median(base) * 1000, "ms", notes=_notes(base))
    )
    for command in COMMANDS:
        times = start_times([str(BIN / command[0]), *command[1:]], env)
        value = statistics.median(times) * 1000
        results.append(
            figure(
                f"{' '.join(command)}: median",
                value,
                "ms",
                f"< {TARGET_MS:.0f} ms",
                value < TARGET_MS,
                _notes(times),
            )
        )
    nobody = free_port()  # nothing listens there
    status = [str(BIN / "cfgctl"), "status", "--server", f"127.0.0.1:{nobody}"]
    times = start_times(status, env)
    results.append(
        figure(
            "cfgctl status (nothing listening): median",
            statistics.median(times) * 1000,
            "ms",
            notes=_notes(times) + "; trio and the client library, not the store",
        )
    )
    return results


BENCHMARKS: dict[str, Benchmark] = {"start": bench_start}

if __name__ == "__main__":
    main(sys.modules[__name__], sys.argv[1:])
