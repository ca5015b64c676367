"""The benchmarks' worker processes, and the timed window of a read load spread over them.

A :class:`Worker` is a process (by default ``python -m bench.confserv_clients``,
:mod:`bench.etcd_peer`'s for etcd) speaking line by line on its stdin and
stdout: ``READY`` once its clients are connected, then (``GO`` or ``STOP``) its
figures as one JSON line. :func:`timed_load` runs that exchange for read
workers and measures the window.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.measure import CpuWindow

ROOT = Path(__file__).resolve().parent.parent
#: Time allowed for a worker process to answer (connect its clients, report).
WORKER_TIMEOUT = 120.0
#: Time a worker gets to exit by itself once its stdin is closed, before SIGTERM.
WORKER_EXIT_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class LoadRun:
    """What one process's read clients did in the timed window."""

    count: int
    wall: float
    cpu: float


class Worker:
    """A worker process of this module speaking line by line on its stdin/stdout."""

    #: The module run as the worker (``python -m``); a subclass names its own.
    module = "bench.confserv_clients"

    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        self._buffer = b""

    def line(self, timeout: float = WORKER_TIMEOUT) -> str:
        """The next line the worker prints (RuntimeError if it exits or times out)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"worker {self.proc.args!r} said nothing for {timeout:g} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(
                        f"worker exited ({self.proc.poll()}) before answering: {self._buffer!r}"
                    )
                self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\n")
        return text.decode()

    def expect(self, word: str) -> None:
        """Wait for the line ``word``."""
        got = self.line()
        if got != word:
            raise RuntimeError(f"worker said {got!r}, expected {word!r}")

    def tell(self, word: str) -> None:
        """Send one line to the worker."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word}\n".encode())
        self.proc.stdin.flush()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """Close its stdin and stop it (SIGTERM, then SIGKILL)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with suppress(OSError):
                self.proc.stdin.close()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(WORKER_EXIT_GRACE)  # it exits by itself at the end of its stdin
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def workers(args: Sequence[Sequence[str]], kind: type[Worker] = Worker) -> Iterator[list[Worker]]:
    """Start one worker of class ``kind`` per argument list; stop them all on exit."""
    with ExitStack() as stack:
        started: list[Worker] = []
        for one in args:
            worker = kind(one)
            stack.callback(worker.stop)
            started.append(worker)
        yield started


def timed_load(
    started: Sequence[Worker], pids: Mapping[str, int | None]
) -> tuple[list[LoadRun], float, dict[str, float]]:
    """Wait for every read worker's ``READY``, tell them all ``GO`` and collect their
    runs (one :class:`LoadRun` line each); also the wall time from ``GO`` until the
    last has answered, and the CPU seconds of ``pids`` over it (a
    :class:`~bench.measure.CpuWindow`, ``"machine"`` included)."""
    for worker in started:
        worker.expect("READY")
    window = CpuWindow(pids)
    wall = time.perf_counter()
    for worker in started:
        worker.tell("GO")
    runs = [LoadRun(**json.loads(worker.line())) for worker in started]
    wall = time.perf_counter() - wall
    return runs, wall, window.seconds()
