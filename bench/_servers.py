"""Configuration Servers as separate processes for the benchmarks, and process figures.

:func:`write_config` writes a ``confserv.conf`` for SQLite or PostgreSQL,
:func:`init_database_sync` runs what ``cfgctl init`` runs (schema and bootstrap
objects, administrator password :data:`ADMIN_PASSWORD`), and
:func:`confserv_process` runs the ``confserv`` console script on it as a child
process, stopping it (SIGTERM, then SIGKILL) on the way out. The helpers
:func:`process_cpu`, :func:`self_cpu` and :func:`process_rss_kib` read CPU time
and resident memory from ``/proc`` and ``getrusage``.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The section (and Application name) of the benchmarked server.
SECTION = "confserv"
#: Password of the administrator Person ``default`` made by :func:`init_database_sync`.
ADMIN_PASSWORD = "bench-admin"
#: Time a server process gets to listen on its client port.
START_TIMEOUT = 60.0
#: Time a server process gets to exit after SIGTERM before it is SIGKILLed.
STOP_TIMEOUT = 10.0

_LOADED = re.compile(r"\b20003 Loaded (\d+) objects up to serial (\d+) in ([0-9.]+) s")
_PRIMARY = re.compile(r"\b20162 Role changed from \S+ to primary\b")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def write_config(
    directory: Path,
    *,
    engine: str,
    dbname: str,
    port: int,
    db_host: str = HOST,
    db_port: int | None = None,
    username: str = "",
    password: str = "",
) -> Path:
    """Write ``directory/confserv.conf`` for one master server; return its path.

    ``engine`` is ``sqlite`` (``dbname`` a file) or ``postgre``. ADDP is left
    off (the default) so that no keep-alive traffic runs beside the figures.
    """
    db_lines = [f"dbengine = {engine}", f"dbname = {dbname}", f"dbserver = {db_host}"]
    if db_port is not None:
        db_lines.append(f"port = {db_port}")
    if username:
        db_lines.append(f"username = {username}")
    if password:
        db_lines.append(f"password = {password}")
    text = "\n".join(
        [
            "[log]",
            "verbose = standard",
            "all = stderr",
            "",
            "[dbserver]",
            *db_lines,
            "",
            f"[{SECTION}]",
            f"port = {port}",
            "server = dbserver",
            "",
        ]
    )
    path = directory / "confserv.conf"
    path.write_text(text, encoding="utf-8")
    return path


def init_database_sync(config: Path) -> None:
    """Create the schema and bootstrap objects, as ``cfgctl init -s confserv -c config``."""
    from confserv.admin.bootstrap import init_database
    from confserv.config.settings import load_server_settings

    settings = load_server_settings(config, SECTION)
    trio.run(init_database, settings, None, ADMIN_PASSWORD)


def confserv_command(config: Path) -> list[str]:
    """The command line of a ``confserv`` process on ``config``."""
    script = Path(sys.executable).parent / "confserv"
    if script.exists():
        return [str(script), "-s", SECTION, "-c", str(config)]
    return [
        sys.executable,
        "-c",
        "from confserv.server.cli import main; main()",
        "-s",
        SECTION,
        "-c",
        str(config),
    ]


@dataclass
class ServerProcess:
    """A running ``confserv`` child process.

    Attributes:
        proc: the process.
        port: its client port on 127.0.0.1.
        log_path: the file its stderr (the event log) goes to.
        spawned: ``time.perf_counter()`` just before it was spawned.
    """

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    spawned: float

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the client port."""
        return (HOST, self.port)

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def loaded(self) -> tuple[int, int, float] | None:
        """``(objects, serial, seconds)`` of the server's 20003 "Loaded" line, if written."""
        found = _LOADED.search(self.log_text())
        if found is None:
            return None
        return int(found.group(1)), int(found.group(2)), float(found.group(3))

    def is_primary(self) -> bool:
        """Whether the server has logged that it became primary (event 20162)."""
        return _PRIMARY.search(self.log_text()) is not None

    def cpu(self) -> float:
        """CPU seconds the server has used so far."""
        return process_cpu(self.pid)

    def rss_kib(self) -> int:
        """The server's resident set size in KiB."""
        return process_rss_kib(self.pid)

    def check_alive(self) -> None:
        """Raise RuntimeError (with the log's tail) if the server has exited."""
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise RuntimeError(f"confserv exited with {self.proc.returncode}:\n{tail}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def confserv_process(
    config: Path, port: int, log_path: Path, *, wait: bool = True
) -> Iterator[ServerProcess]:
    """Run ``confserv`` on ``config`` (client port ``port``) for the block.

    With ``wait`` the block starts once the server serves clients: it has
    logged that it became primary (event 20162) and its client port accepts
    connections (polled every 20 ms, at most :data:`START_TIMEOUT` seconds). On exit the
    server gets SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT` seconds.
    """
    with log_path.open("wb") as log:
        spawned = time.perf_counter()
        proc = subprocess.Popen(
            confserv_command(config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    server = ServerProcess(proc, port, log_path, spawned)
    try:
        if wait:
            deadline = time.monotonic() + START_TIMEOUT
            while not (server.is_primary() and _listening(port)):
                server.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"confserv was not primary on port {port} after {START_TIMEOUT:g} s"
                    )
                time.sleep(0.02)
        yield server
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``proc``, SIGKILL it if still there after ``timeout`` s; reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kib(pid: int) -> int:
    """``VmRSS`` of process ``pid`` in KiB (0 when not found)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def self_cpu() -> float:
    """CPU seconds (user + system) used so far by this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_open_file_limit(needed: int) -> int:
    """Raise the soft open-file limit to at least ``needed`` if the hard limit allows it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(f"open-file limit {soft} is below the {needed} needed")
    return needed if soft == resource.RLIM_INFINITY else soft


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


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used: user, nice and system of /proc/stat.

    Interrupt time (much of it loopback TCP work on behalf of the benchmark's
    own processes) and time stolen by the hypervisor are left out, so the
    difference from the benchmark's processes is other processes' work.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    busy = sum(int(fields[i]) for i in (1, 2, 3))
    return busy / os.sysconf("SC_CLK_TCK")


def background_load(seconds: float = 1.0) -> float:
    """Per cent of one core the machine's other processes use while this one sleeps."""
    import time

    before = machine_cpu()
    time.sleep(seconds)
    return (machine_cpu() - before) / seconds * 100


def run_benchmarks(benchmarks: dict[str, Any], warning: str) -> list[Any]:
    """Run a module's benchmarks in order after noting the machine's background load."""
    busy = background_load()
    print(f"  (other processes use {busy:.0f}% of one core before the start)", flush=True)
    if busy > 20:
        print(f"  WARNING: the machine is not idle: {warning}", flush=True)
    results: list[Any] = []
    for bench in benchmarks.values():
        results += bench()
    return results


def cfgctl_init(conf: Path, first: str, backup: str) -> None:
    """``cfgctl init -s FIRST -c CONF --backup-section BACKUP``, as an operator runs it
    (administrator password :data:`ADMIN_PASSWORD`); RuntimeError with its output if it fails."""
    cfgctl = str(Path(sys.executable).parent / "cfgctl")
    done = subprocess.run(
        [cfgctl, "init", "-s", first, "-c", str(conf), "--backup-section", backup],
        env={**os.environ, "CFG_PASSWORD": ADMIN_PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cfgctl init failed ({done.returncode}): {done.stdout}{done.stderr}")
