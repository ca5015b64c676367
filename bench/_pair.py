"""A warm-standby pair (and a proxy) as separate processes, for ``bench/bench_pair.py``.

:func:`write_pair_config` writes one configuration file holding the primary
(``[confserv]``), the backup (``[backup]``) and a proxy (``[proxy]``) on free
ports of 127.0.0.1, sharing one SQLite Configuration Database;
:func:`cfgctl_init` prepares the database as an operator does
(``cfgctl init -s confserv -c FILE --backup-section backup``). A :class:`Node`
is one ``confserv`` process of that file, started, killed and restarted at
will; :func:`pair_nodes` stops every node it made on the way out (SIGTERM,
then SIGKILL), whatever happened. :func:`in_process_server` runs one master
section in the caller's trio loop instead, so that a benchmark can hook its
:class:`~confserv.core.service.ConfigService`.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from bench import _servers as servers
from bench._servers import HOST, ROOT, STOP_TIMEOUT, free_port, stop_process
from confserv.client.session import ManagementClient, open_management
from confserv.wire.errors import ConfServError

#: The management secret every node of the generated file shares.
SECRET = "bench-pair-secret"
#: Sections of the generated file.
PRIMARY, BACKUP, PROXY = "confserv", "backup", "proxy"
#: Time a node gets to reach a role after being started.
ROLE_TIMEOUT = 30.0

_BIN = Path(sys.executable).parent


@dataclass(frozen=True, slots=True)
class PairConfig:
    """The generated configuration file and the ports it gives each section.

    Attributes:
        path: the file.
        ports: section -> ``(client port, management port)``.
    """

    path: Path
    ports: dict[str, tuple[int, int]]


def write_pair_config(
    directory: Path, *, lease_ttl: float = 4.0, lease_renew: float = 1.0
) -> PairConfig:
    """Write ``directory/pair.conf``: primary, backup and proxy on one SQLite database.

    ADDP stays off (the default), as in the other benchmarks, so that no
    keep-alive traffic runs beside the figures: a SIGKILLed process's sockets
    are closed by the kernel, which every peer sees at once. ``[log]`` is at
    ``standard`` (no line per write) on stderr, which :class:`Node` sends to a
    file per process.
    """
    ports = {section: (free_port(), free_port()) for section in (PRIMARY, BACKUP, PROXY)}
    common = (
        f"management-secret = {SECRET}\nserver = dbserver\n"
        f"lease-ttl = {lease_ttl:g}\nlease-renew = {lease_renew:g}\n"
    )
    masters = ",".join(f"{HOST}:{ports[s][1]}" for s in (PRIMARY, BACKUP))
    text = (
        f"[{PRIMARY}]\nport = {ports[PRIMARY][0]}\nmanagement-port = {ports[PRIMARY][1]}\n"
        f"{common}\n"
        f"[{BACKUP}]\nport = {ports[BACKUP][0]}\nmanagement-port = {ports[BACKUP][1]}\n"
        f"{common}\n"
        f"[{PROXY}]\nmode = proxy\nport = {ports[PROXY][0]}\n"
        f"management-port = {ports[PROXY][1]}\nmanagement-secret = {SECRET}\n"
        f"master = {masters}\n\n"
        "[log]\nverbose = standard\nall = stderr\n\n"
        f"[dbserver]\ndbengine = sqlite\ndbname = {directory / 'pair.sqlite'}\n"
    )
    path = directory / "pair.conf"
    path.write_text(text, encoding="utf-8")
    return PairConfig(path, ports)


def cfgctl_init(config: PairConfig) -> None:
    """``cfgctl init`` of this pair (see :func:`bench._servers.cfgctl_init`)."""
    servers.cfgctl_init(config.path, PRIMARY, BACKUP)


@dataclass
class Node:
    """One ``confserv -s SECTION -c FILE`` process, which may be killed and started again.

    Its event log (stderr) is appended to ``log_path`` across restarts.
    """

    config: PairConfig
    section: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_offset: int = field(default=0, repr=False)

    @property
    def port(self) -> int:
        """The client port."""
        return self.config.ports[self.section][0]

    @property
    def mport(self) -> int:
        """The management port."""
        return self.config.ports[self.section][1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, client port)``."""
        return (HOST, self.port)

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Spawn the process (in its own session, so a Ctrl-C here does not reach it)."""
        if self.alive:
            raise RuntimeError(f"{self.section} is already running")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(_BIN / "confserv"), "-s", self.section, "-c", str(self.config.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the process and reap it (returns once it is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; reap."""
        if self.proc is not None:
            stop_process(self.proc, STOP_TIMEOUT)

    def log_text(self, *, since_start: bool = False) -> str:
        """The node's event log (only what its current process wrote with ``since_start``)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            if since_start:
                log.seek(self._log_offset)
            return log.read().decode("utf-8", errors="replace")

    def check_alive(self) -> None:
        """RuntimeError with the log's tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise RuntimeError(f"{self.section} exited with {self.proc.returncode}:\n{tail}")

    def manage(self, timeout: float = 5.0) -> AbstractAsyncContextManager[ManagementClient]:
        """``open_management`` to this node (an async context manager)."""
        return open_management(HOST, self.mport, SECRET, timeout=timeout)

    async def status(self) -> dict[str, Any] | None:
        """The management ``status`` answer, or None while the node does not answer."""
        try:
            with trio.fail_after(3):
                async with self.manage(timeout=2) as m:
                    return await m.status()
        except (OSError, ConfServError, trio.TooSlowError):
            return None
        except Exception:  # a link ending in the middle of the handshake
            return None

    async def wait_role(self, role: str, timeout: float = ROLE_TIMEOUT) -> dict[str, Any]:
        """Poll ``status`` every 20 ms until the node reports ``role``; its status."""
        deadline = trio.current_time() + timeout
        while True:
            self.check_alive()
            found = await self.status()
            if found is not None and found.get("role") == role:
                return found
            if trio.current_time() > deadline:
                raise RuntimeError(f"{self.section} not {role} after {timeout:g} s: {found}")
            await trio.sleep(0.02)


@dataclass
class Nodes:
    """The three nodes of one generated file (none started yet)."""

    config: PairConfig
    first: Node
    second: Node
    proxy: Node

    @property
    def masters(self) -> tuple[Node, Node]:
        """The two master-mode nodes."""
        return (self.first, self.second)


@contextmanager
def pair_nodes(
    directory: Path, *, lease_ttl: float = 4.0, lease_renew: float = 1.0
) -> Iterator[Nodes]:
    """A generated, initialised pair file and its three (unstarted) nodes; all stopped on exit."""
    config = write_pair_config(directory, lease_ttl=lease_ttl, lease_renew=lease_renew)
    cfgctl_init(config)
    nodes = Nodes(
        config,
        Node(config, PRIMARY, directory / f"{PRIMARY}.log"),
        Node(config, BACKUP, directory / f"{BACKUP}.log"),
        Node(config, PROXY, directory / f"{PROXY}.log"),
    )
    try:
        yield nodes
    finally:
        for node in (nodes.proxy, nodes.first, nodes.second):
            with suppress(Exception):
                node.stop()


@asynccontextmanager
async def in_process_server(
    config: PairConfig, section: str, log_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """Run master ``section`` of the file in this trio loop (``confserv.server.app.run_server``).

    Yields what ``run_server`` reports as started (``port``,
    ``management_port``, ``runtime``, ``driver``); cancelled on exit. The
    event log goes to ``log_path``.
    """
    from confserv.config.settings import load_server_settings
    from confserv.logs.eventlog import EventLog
    from confserv.server.app import run_server

    settings = load_server_settings(config.path, section)
    with log_path.open("a", encoding="utf-8", buffering=1) as out:
        log = EventLog(section, out, verbose=settings.log.verbose)
        async with trio.open_nursery() as nursery:
            info = await nursery.start(
                lambda task_status: run_server(settings, log=log, task_status=task_status)
            )
            try:
                yield info
            finally:
                nursery.cancel_scope.cancel()


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of ``values`` (nan if empty)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def log_stamps(text: str, event_id: int, after: float) -> list[float]:
    """Wall-clock times (``time.time()`` scale, 1 ms resolution) of ``event_id`` lines.

    The event log writes ``HH:MM:SS.mmm`` in local time; the date is taken from
    ``after`` (a wall-clock time shortly before the lines of interest), and
    only lines at or after ``after - 1`` s are returned.
    """
    day = datetime.fromtimestamp(after).replace(hour=0, minute=0, second=0, microsecond=0)
    base = day.timestamp()
    tag = f" {event_id:05d} "
    out: list[float] = []
    for line in text.splitlines():
        if tag not in line[:24]:
            continue
        clock = line.split(" ", 1)[0]
        try:
            hours, minutes, rest = clock.split(":")
            stamp = base + int(hours) * 3600 + int(minutes) * 60 + float(rest)
        except ValueError:
            continue
        if stamp < after - 1.0:
            stamp += 86400.0 if after - stamp > 43200 else 0.0
        if stamp >= after - 1.0:
            out.append(stamp)
    return out
