"""The generated pair's servers as plain ``confserv`` processes, without a supervisor.

:class:`Node` is one ``confserv -s SECTION -c FILE`` process that can be
signalled, killed and started again; :func:`pair_nodes` writes the pair's
``confserv.conf`` (``tests/helpers/system.py``'s :func:`write_confserv_conf`:
the pair and a proxy), initialises its database as an operator does and
yields its three nodes, unstarted, stopping every one on the way out.
Used by the benchmarks of the pair (``bench/bench_pair.py``) and single
server (``bench/bench_confserv.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from addp import AddpError
from confserv.client.session import ManagementClient, open_management
from confserv.wire.errors import ConfServError
from confserv.wire.tls import ClientTls

from .system import BIN, MEMBERS, PROXY, SECRET, cfgctl_init, free_port, write_confserv_conf
from .tls import TlsFiles


class Node:
    """One ``confserv`` process of a file; its output (the event log) appended to ``logfile``
    across restarts. ``mport`` is its management port (None: it has none)."""

    def __init__(
        self, conf: Path, section: str, port: int, mport: int | None, logfile: Path
    ) -> None:
        self.conf, self.section, self.port, self.mport = conf, section, port, mport
        self.logfile = logfile
        self.proc: subprocess.Popen[bytes] | None = None
        #: ``time.monotonic()`` just before the last start.
        self.started_at = 0.0
        self._offset = 0
        #: How :meth:`manage` reaches the management port (None: plain TCP).
        self.client_tls: ClientTls | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        """``(host, client port)``."""
        return ("127.0.0.1", self.port)

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Spawn the process (RuntimeError if it runs already)."""
        if self.alive:
            raise RuntimeError(f"{self.section} is already running")
        self._offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        with self.logfile.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [str(BIN / "confserv"), "-s", self.section, "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL the process and reap it (returns once it is gone)."""
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGCONT and SIGTERM, SIGKILL if still there after ``timeout`` s; reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self, *, since_start: bool = False) -> str:
        """The node's event log (only what its current process wrote with ``since_start``)."""
        if not self.logfile.exists():
            return ""
        with self.logfile.open("rb") as log:
            log.seek(self._offset if since_start else 0)
            return log.read().decode("utf-8", errors="replace")

    def check_alive(self) -> None:
        """RuntimeError with the log's tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise RuntimeError(f"{self.section} exited with {self.proc.returncode}:\n{tail}")

    def manage(self, timeout: float = 5.0) -> AbstractAsyncContextManager[ManagementClient]:
        """``open_management`` to this node (an async context manager)."""
        assert self.mport is not None
        return open_management(
            "127.0.0.1", self.mport, SECRET, timeout=timeout, tls=self.client_tls
        )

    async def status(self) -> dict[str, Any] | None:
        """The management ``status`` answer, or None while the node does not answer."""
        try:
            with trio.fail_after(3):
                async with self.manage(timeout=2) as m:
                    return await m.status()
        except (OSError, ConfServError, AddpError, trio.BrokenResourceError, trio.TooSlowError):
            return None

    async def wait_role(
        self, role: str, timeout: float = 30.0, every: float = 0.02
    ) -> dict[str, Any]:
        """Poll ``status`` until the node reports ``role``; its status (RuntimeError after
        ``timeout`` or if the process exits)."""
        deadline = trio.current_time() + timeout
        while True:
            self.check_alive()
            found = await self.status()
            if found is not None and found.get("role") == role:
                return found
            if trio.current_time() > deadline:
                raise RuntimeError(f"{self.section} not {role} after {timeout:g} s: {found}")
            await trio.sleep(every)


@dataclass(frozen=True, slots=True)
class Pair:
    """The generated file and its nodes: the two members and the proxy."""

    conf: Path
    first: Node
    second: Node
    proxy: Node

    @property
    def masters(self) -> tuple[Node, Node]:
        """The two members."""
        return (self.first, self.second)


@contextmanager
def pair_nodes(directory: Path, tls: TlsFiles | None = None, **options: Any) -> Iterator[Pair]:
    """A generated, initialised ``directory/confserv.conf`` (``options`` as for
    :func:`write_confserv_conf`) and its three unstarted nodes; all stopped on exit.
    ``tls``: every port and link over TLS with those files (and :meth:`Node.manage`)."""
    ports = {s: (free_port(), free_port()) for s in (*MEMBERS, PROXY)}
    conf = directory / "confserv.conf"
    if tls is not None:
        options["server_lines"] = {s: tls.lines() for s in ports}
    write_confserv_conf(conf, ports, **options)
    cfgctl_init(conf)
    first, second, proxy = (Node(conf, s, *ports[s], directory / f"{s}.log") for s in ports)
    for node in (first, second, proxy):
        node.client_tls = None if tls is None else tls.client()
    try:
        yield Pair(conf, first, second, proxy)
    finally:
        for node in (proxy, first, second):
            node.stop()


@asynccontextmanager
async def lone_primary(directory: Path) -> AsyncIterator[Node]:
    """The primary of a generated, initialised ``directory/confserv.conf`` (its pair's
    backup never started), running; stopped on the way out."""
    ports = {s: (free_port(), free_port()) for s in MEMBERS}
    conf = directory / "confserv.conf"
    write_confserv_conf(conf, ports, verbose="standard")
    await trio.to_thread.run_sync(cfgctl_init, conf)
    node = Node(conf, MEMBERS[0], *ports[MEMBERS[0]], directory / f"{MEMBERS[0]}.log")
    node.start()
    try:
        await node.wait_role("primary")
        yield node
    finally:
        node.stop()
