"""What the benchmarks read of the machine, and the times of event-log lines.

CPU time has one helper, :class:`CpuWindow` (over :func:`cpu_seconds` and
:func:`machine_cpu`): CPU seconds of named processes and of the whole machine
over a window, and as per cent of one core. Beside it: resident memory, the
background load before a module starts, one fsync's time, the open-file
limit, pinning to one core, and :func:`log_stamps`, which reads when an
event-log line was written.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from confserv.logs.handlers import parse_stamp


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, all its threads.

    None is this process (``getrusage``, microseconds); another process is read
    from ``/proc/<pid>/stat`` (clock ticks).
    """
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()  # utime, stime: fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used: user, nice and system of /proc/stat.

    Interrupt time (much of it loopback TCP work on behalf of the benchmark's
    own processes) and time stolen by the hypervisor are left out, so the
    difference from the benchmark's processes is other processes' work.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    return sum(int(fields[i]) for i in (1, 2, 3)) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU used by named processes (pid None: this one) and by the machine since it was made.

    :meth:`seconds` and :meth:`percent` read the processes again each time
    they are called; ``"machine"`` is the whole machine (:func:`machine_cpu`).
    """

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = dict(pids)
        self.opened = time.monotonic()
        #: The wall time :meth:`percent` last divided by.
        self.wall = 0.0
        self._before = self._read()

    def _read(self) -> dict[str, float]:
        return {n: cpu_seconds(p) for n, p in self.pids.items()} | {"machine": machine_cpu()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds used since the window opened, by name (and ``"machine"``)."""
        return {name: value - self._before[name] for name, value in self._read().items()}

    def percent(self) -> dict[str, float]:
        """The same as per cent of one core over the wall time since the window opened."""
        used, self.wall = self.seconds(), time.monotonic() - self.opened
        return {name: value / self.wall * 100 for name, value in used.items()}


def rss_kib(pid: int) -> int:
    """``VmRSS`` of process ``pid`` in KiB (0 when not found)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def background_load(seconds: float = 1.0) -> float:
    """Per cent of one core the machine's other processes use while this one sleeps."""
    window = CpuWindow({})
    time.sleep(seconds)
    return window.percent()["machine"]


def fsync_ms(directory: Path, count: int = 200) -> float:
    """Milliseconds one 4 KiB write plus ``fsync`` takes in ``directory`` (mean of ``count``)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        return (time.perf_counter() - start) / count * 1000
    finally:
        os.close(fd)
        path.unlink()


def raise_open_file_limit(needed: int) -> int:
    """Raise the soft open-file limit to at least ``needed`` (children inherit it); the limit.

    RuntimeError if the hard limit does not allow it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(f"open-file limit {soft} is below the {needed} needed")
    return needed if soft == resource.RLIM_INFINITY else soft


@contextmanager
def one_core() -> Iterator[int]:
    """Pin this process to one CPU for the duration; yield that CPU's number."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def log_stamps(text: str, event_id: int, after: float) -> list[float]:
    """Wall-clock times (``time.time()`` scale, 1 ms resolution) of ``event_id`` lines.

    The event log writes ``YYYY-MM-DD HH:MM:SS.mmm`` in local time; only lines at
    or after ``after - 1`` s are returned.
    """
    tag = f" {event_id:05d} "
    out: list[float] = []
    for line in text.splitlines():
        if tag not in line[:35]:
            continue
        try:
            stamp = parse_stamp(line[:23])
        except ValueError:
            continue
        if stamp >= after - 1.0:
            out.append(stamp)
    return out
