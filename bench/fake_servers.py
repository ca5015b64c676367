"""Fake Configuration Servers for the supervisor's benchmark: N management ports, one process.

:func:`serve_fake_servers` serves N management ports in one trio process with
the real :class:`confserv.server.management.ManagementSession` over a dummy
:class:`confserv.core.runtime.Runtime` (no database): the challenge, ``auth``,
``status`` and ``watch`` behave as a Configuration Server's, so the
supervisor cannot tell them from real servers. :func:`start_fake_servers`
runs them as a child process (``python -m bench.fake_servers N BASEPORT
[ADDP_TIMEOUT [PORTS_FILE]]``), and :func:`write_fleet_config` writes an
``scs.conf`` that only watches them (``autostart``/``autorestart`` off).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio

from bench.measure import raise_open_file_limit
from tests.helpers.system import CONTROL_SECRET, SECRET, free_port

ROOT = Path(__file__).resolve().parent.parent


class _FakePasswords:
    """What :meth:`confserv.core.runtime.Runtime.status` reads of a password checker."""

    hashes = 0


class _FakeService:
    """What :meth:`confserv.core.runtime.Runtime.status` reads of a ConfigService."""

    def __init__(self, epoch: int, serial: int) -> None:
        self.epoch = epoch
        self.last_serial = serial
        self.writable = False
        self.subscriber_count = 0
        self.passwords = _FakePasswords()

    def __len__(self) -> int:
        return 0


async def serve_fake_servers(
    count: int,
    baseport: int,
    secret: str,
    addp_timeout: float,
    *,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``count`` management ports (``baseport + i``, or kernel-chosen with 0) until cancelled.

    Port ``i`` is server ``cs<i>`` of pair ``p<i // 2>``: primary at epoch 1
    when ``i`` is even, else backup. Each connection runs the real
    :class:`~confserv.server.management.ManagementSession` (challenge, ``auth`` with
    ``secret``, ``status``, ``watch``) with ADDP on at ``addp_timeout``
    (both ways) unless it is 0; its event log writes nothing.
    """
    from addp import AddpOptions
    from addp.transport import Link, serve
    from confserv.core.runtime import Runtime
    from confserv.logs.eventlog import EventLog
    from confserv.server.management import ManagementSession

    log = EventLog("fake", sys.stderr, verbose="none")
    options = (
        AddpOptions.addp(timeout=addp_timeout, remote_timeout=addp_timeout)
        if addp_timeout > 0
        else AddpOptions()
    )

    async def session(rt: Runtime, link: Link) -> None:
        await ManagementSession(link, rt, secret).run()

    ports: list[int] = []
    async with trio.open_nursery() as nursery:
        for i in range(count):
            rt = Runtime(
                name=f"cs{i}",
                pair=f"p{i // 2}",
                service=cast("Any", _FakeService(epoch=1, serial=1000 + i)),
                log=log,
                role="primary" if i % 2 == 0 else "backup",
            )
            listeners = await nursery.start(
                partial(serve, partial(session, rt), baseport + i if baseport else 0, options)
            )
            ports.append(int(listeners[0].socket.getsockname()[1]))
        task_status.started(ports)


def main(argv: Sequence[str]) -> None:
    """``N BASEPORT [ADDP_TIMEOUT [PORTS_FILE]]``: serve until killed.

    BASEPORT 0 lets the kernel choose. Once every port listens, the ports are
    written as JSON (``{"pid": ..., "ports": [...]}``) to PORTS_FILE (atomically)
    or to stdout. The secret is the harness's ``SECRET``.
    """
    if not 2 <= len(argv) <= 4:
        raise SystemExit("usage: python -m bench.fake_servers N BASEPORT [ADDP_TIMEOUT [FILE]]")
    count, baseport = int(argv[0]), int(argv[1])
    addp_timeout = float(argv[2]) if len(argv) > 2 else 1.0
    ports_file = Path(argv[3]) if len(argv) > 3 else None
    raise_open_file_limit(2 * count + 256)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(
                partial(serve_fake_servers, count, baseport, SECRET, addp_timeout)
            )
            text = json.dumps({"pid": os.getpid(), "ports": ports})
            if ports_file is None:
                print(text, flush=True)
            else:
                tmp = ports_file.with_suffix(".tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(ports_file)

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve)


def write_fleet_config(
    directory: Path, ports: Sequence[int], *, addp_timeout: float = 1.0
) -> tuple[Path, int]:
    """``scs.conf`` watching fake servers at ``ports`` as pairs (``cs<2k>``, ``cs<2k+1>``).

    Nothing is started or restarted (``autostart``/``autorestart`` off, no
    ``command``); every link runs ADDP at ``addp_timeout`` both ways. The
    client ports (never connected to) are numbered from 10000, outside the
    kernel's ephemeral range. Returns the file and its control port.
    """
    if len(ports) % 2:
        raise ValueError("an even number of ports (pairs)")
    control = free_port()
    taken = {*ports, control}
    client_ports = (p for p in range(10000, 32768) if p not in taken)
    parts = [
        f"[scs]\ncontrol-port = {control}\ncontrol-secret = {CONTROL_SECRET}\nverbose = standard\n"
    ]
    for i, mport in enumerate(ports):
        peer = i + 1 if i % 2 == 0 else i - 1
        parts.append(
            f"[cs{i}]\nhost = 127.0.0.1\nport = {next(client_ports)}\nserver = cs{peer}\n"
            f"pair = p{i // 2}\nmanagement-port = {mport}\nmanagement-secret = {SECRET}\n"
            "autostart = false\nautorestart = false\n"
            f"protocol = addp\naddp-timeout = {addp_timeout:g}\n"
            f"addp-remote-timeout = {addp_timeout:g}\n"
        )
    path = directory / "scs-fleet.conf"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path, control


@dataclass
class FakeServers:
    """The fake-servers child process and its ports."""

    proc: subprocess.Popen[bytes]
    ports: list[int]

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 10 s; reap."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


def start_fake_servers(
    directory: Path, count: int, *, addp_timeout: float = 1.0, timeout: float = 60.0
) -> FakeServers:
    """Start the fake-servers process on kernel-chosen ports; return once all listen."""
    ports_file = directory / "fake-ports.json"
    ports_file.unlink(missing_ok=True)
    args = (str(count), "0", f"{addp_timeout:g}", str(ports_file))
    with (directory / "fake-servers.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_servers", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    fake = FakeServers(proc, [])
    deadline = time.monotonic() + timeout
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            fake.stop()
            text = (directory / "fake-servers.log").read_text(errors="replace")
            raise RuntimeError(f"fake servers did not start ({proc.returncode}): {text[-2000:]}")
        time.sleep(0.05)
    fake.ports = list(json.loads(ports_file.read_text(encoding="utf-8"))["ports"])
    return fake


if __name__ == "__main__":
    main(sys.argv[1:])
