"""The supervisor as a process, a writer through the client library, fake servers (bench_scs).

:class:`ScsSystem` writes a ``confserv.conf`` holding a warm-standby pair
(``[confserv]``, ``[backup]``) on one SQLite Configuration Database and an
``scs.conf`` supervising both (ADDP on the supervisor's links), initialises
the database as an operator does (``cfgctl init``) and runs ``scs -f`` as a
child process, asking it for its status over its control port. It stops the
supervisor (SIGINT, which stops its servers) and kills any server process
left behind on the way out.

:class:`Writer` creates DNs in a loop through
:func:`confserv.client.resilient.open_resilient_client` and records, for every
acknowledged write, when (``time.monotonic()``), which server answered and
at what epoch.

:func:`serve_fake_servers` serves N management ports in one trio process with
the real :class:`confserv.server.management.ManagementSession` over a dummy
:class:`confserv.core.runtime.Runtime` (no database): the challenge, ``auth``,
``status`` and ``watch`` behave as a Configuration Server's, so the
supervisor cannot tell them from real servers. :func:`write_fleet_config`
writes an ``scs.conf`` that only watches them (``autostart``/``autorestart``
off).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio

from bench._servers import ADMIN_PASSWORD, HOST, ROOT, cfgctl_init, free_port

#: Management and control secret of every generated file.
SECRET = "bench-scs-secret"
#: Sections of the generated pair.
FIRST, SECOND = "confserv", "backup"
MEMBERS = (FIRST, SECOND)
BACKUP_ARGS = ("--backup-section", SECOND)

_BIN = Path(sys.executable).parent

Rows = dict[str, dict[str, Any]]


def _other(section: str) -> str:
    return SECOND if section == FIRST else FIRST


def healthy(rows: Rows) -> bool:
    """Both members linked and running, one primary and one backup."""
    return {rows[FIRST]["role"], rows[SECOND]["role"]} == {"primary", "backup"} and all(
        rows[s]["state"] == "running" for s in MEMBERS
    )


def primary_of(rows: Rows) -> str:
    """The member the supervisor sees as primary (ValueError if none)."""
    for section in MEMBERS:
        if rows[section]["role"] == "primary":
            return section
    raise ValueError(f"no primary in {rows}")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _raise_nofile(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to ``needed`` (up to the hard limit); for preexec_fn."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class ScsProcess:
    """One ``scs -f FILE`` child process and its control port."""

    def __init__(self, scs_conf: Path, control_port: int, log_path: Path) -> None:
        self.scs_conf = scs_conf
        self.control_port = control_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned = 0.0

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, nofile: int = 0) -> None:
        """Spawn ``scs -f`` (own session: a Ctrl-C here does not reach it); log to a file."""
        preexec = partial(_raise_nofile, nofile) if nofile else None
        with self.log_path.open("ab") as log:
            self.spawned = time.monotonic()
            self.proc = subprocess.Popen(
                [str(_BIN / "scs"), "-f", str(self.scs_conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=preexec,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT (the supervisor stops its servers), SIGKILL after ``timeout``; reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()

    def check_alive(self) -> None:
        """RuntimeError with the log's tail if the supervisor has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"scs exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_text(self) -> str:
        """The supervisor's event log so far."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logged(self, event_id: int) -> int:
        """How many lines of ``event_id`` the supervisor has logged."""
        tag = f" {event_id:05d} "
        return sum(tag in line[:24] for line in self.log_text().splitlines())

    async def ask(self, op: str = "status", **args: Any) -> dict[str, Any]:
        """One request on the control port (a fresh authenticated connection)."""
        from confserv.client.session import open_management

        with trio.fail_after(10):
            async with open_management(HOST, self.control_port, SECRET, timeout=5) as m:
                answer: dict[str, Any] = await m.session.request(op, **args)
        return answer

    async def status(self) -> Rows:
        """The supervisor's status rows by section."""
        answer = await self.ask("status")
        return {row["section"]: row for row in answer["servers"]}

    async def wait(
        self, predicate: Callable[[Rows], bool], timeout: float = 60.0, every: float = 0.05
    ) -> Rows:
        """Poll the status until ``predicate`` holds; RuntimeError (with the log) at ``timeout``."""
        from confserv.wire.errors import ConfServError

        deadline = time.monotonic() + timeout
        last: Rows | None = None
        while True:
            self.check_alive()
            try:
                last = await self.status()
                if predicate(last):
                    return last
            except (OSError, ConfServError, trio.TooSlowError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"condition not reached in {timeout:g} s; last status {last}\n{self.log_tail()}"
                )
            await trio.sleep(every)


class ScsSystem(ScsProcess):
    """A generated pair (``confserv.conf``) under a generated ``scs.conf``; see module docstring.

    Every server section of ``scs.conf`` has ``protocol = addp`` with
    ``addp_timeout`` both ways, ``failover-wait = 0``, ``promote-retry``
    0.05 s, ``restart-backoff`` 0.2 s and a restart limit high enough for
    many deliberate kills. The servers' own files also run ADDP at
    ``addp_timeout`` and the given lease. ``[log] verbose = standard``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        lease_ttl: float = 2.0,
        lease_renew: float = 0.4,
        addp_timeout: float = 1.0,
    ) -> None:
        self.directory = directory
        p = [free_port() for _ in range(5)]
        self.ports = {FIRST: (p[0], p[1]), SECOND: (p[2], p[3])}
        self.conf = directory / "confserv.conf"
        common = (
            f"management-secret = {SECRET}\nserver = db\n"
            f"lease-ttl = {lease_ttl:g}\nlease-renew = {lease_renew:g}\n"
            f"protocol = addp\naddp-timeout = {addp_timeout:g}\n"
        )
        self.conf.write_text(
            "".join(
                f"[{s}]\nport = {c}\nmanagement-port = {m}\n{common}\n"
                for s, (c, m) in self.ports.items()
            )
            + "[log]\nverbose = standard\nall = stderr\n\n"
            + f"[db]\ndbengine = sqlite\ndbname = {directory / 'cfg.sqlite'}\n",
            encoding="utf-8",
        )
        confserv = _BIN / "confserv"

        def server(section: str) -> str:
            command = shlex.join([str(confserv), "-s", section, "-c", str(self.conf)])
            return (
                f"[{section}]\nhost = {HOST}\nport = {self.ports[section][0]}\n"
                f"server = {_other(section)}\npair = {FIRST}\n"
                f"management-port = {self.ports[section][1]}\nmanagement-secret = {SECRET}\n"
                f"command = {command}\nworking-directory = {directory}\n"
                f"protocol = addp\naddp-timeout = {addp_timeout:g}\n"
                f"addp-remote-timeout = {addp_timeout:g}\n"
                "failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n"
                "restart-limit = 1000\nrestart-window = 60\nstop-timeout = 5\n\n"
            )

        scs_conf = directory / "scs.conf"
        scs_conf.write_text(
            f"[scs]\ncontrol-port = {p[4]}\ncontrol-secret = {SECRET}\nverbose = standard\n\n"
            + server(FIRST)
            + server(SECOND),
            encoding="utf-8",
        )
        super().__init__(scs_conf, p[4], directory / "scs.log")
        self.seen_pids: set[int] = set()
        #: Promotions :meth:`heal` made by hand (a pair left with no primary).
        self.operator_promotions = 0
        cfgctl_init(self.conf, FIRST, SECOND)

    def address(self, section: str) -> tuple[str, int]:
        """``(host, client port)`` of a member."""
        return (HOST, self.ports[section][0])

    def server_log(self, section: str) -> str:
        """What a member's processes wrote (the supervisor appends them to one file)."""
        path = self.directory / f"{section}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    async def status(self) -> Rows:
        """The status rows; every server pid seen is remembered for the clean-up."""
        rows = await super().status()
        self.seen_pids.update(int(r["pid"]) for r in rows.values() if r.get("pid"))
        return rows

    async def member_status(self, section: str) -> dict[str, Any] | None:
        """A member's own ``status`` from its management port (None when it does not answer)."""
        from confserv.client.session import open_management
        from confserv.wire.errors import ConfServError

        try:
            with trio.fail_after(3):
                async with open_management(HOST, self.ports[section][1], SECRET, timeout=2) as m:
                    return await m.status()
        except (OSError, ConfServError, trio.TooSlowError):
            return None

    async def heal(
        self, predicate: Callable[[Rows], bool], *, timeout: float = 60.0, grace: float = 5.0
    ) -> Rows:
        """Wait until ``predicate`` holds and the primary it names says so itself.

        The supervisor's view is checked against the servers' own: when both
        members say they are backup for ``grace`` seconds, the one with the
        higher serial is asked to ``switch-to-primary`` (without force) on its
        management port, as an operator would with ``cfgctl promote``; again
        every ``grace`` seconds while refused. Such promotions are counted in
        :attr:`operator_promotions`.
        """
        from confserv.wire.errors import ConfServError

        deadline = time.monotonic() + timeout
        no_primary_since: float | None = None
        next_check = time.monotonic() + 1.0
        last: Rows | None = None
        while True:
            self.check_alive()
            try:
                last = await self.status()
            except (OSError, ConfServError, trio.TooSlowError):
                last = None
            now = time.monotonic()
            if last is not None and predicate(last):
                own = await self.member_status(primary_of(last))
                if own is not None and own.get("role") == "primary":
                    return last
            if now >= next_check:
                next_check = now + 1.0
                mine = {s: await self.member_status(s) for s in MEMBERS}
                serials = {s: int(m["serial"]) for s, m in mine.items() if m is not None}
                if all(m is not None and m.get("role") == "backup" for m in mine.values()):
                    no_primary_since = no_primary_since or now
                    if now - no_primary_since >= grace:
                        no_primary_since = now
                        await self._promote_by_hand(max(serials, key=lambda s: serials[s]))
                else:
                    no_primary_since = None
            if now > deadline:
                raise RuntimeError(
                    f"condition not reached in {timeout:g} s; last status {last}\n{self.log_tail()}"
                )
            await trio.sleep(0.05)

    async def _promote_by_hand(self, section: str) -> None:
        from confserv.client.session import open_management
        from confserv.wire.errors import ConfServError

        try:
            with trio.fail_after(10):
                async with open_management(HOST, self.ports[section][1], SECRET, timeout=5) as m:
                    await m.switch_to_primary(force=False)
            self.operator_promotions += 1
        except (OSError, ConfServError, trio.TooSlowError):
            pass

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a server process of this system (its command names our file)."""
        return str(self.conf) in _cmdline(pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the supervisor, then SIGKILL any of our server processes still there."""
        try:
            super().stop(timeout)
        finally:
            for pid in self.seen_pids:
                if self.owns(pid):
                    for sig in (signal.SIGCONT, signal.SIGKILL):
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            break


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write: when (``time.monotonic()``), from which server, at what epoch."""

    at: float
    address: tuple[str, int] | None
    epoch: int


@dataclass
class Writer:
    """Creates DNs without pause through the resilient client (see module docstring).

    With ``tight`` false it sleeps ``pace`` seconds between writes (between
    the measured runs, to keep the database and the CPU load small).
    """

    servers: Sequence[tuple[str, int]]
    reconnect_timeout: float = 0.02
    pace: float = 0.01
    tight: bool = False
    acks: list[Ack] = field(default_factory=list)
    lost: list[float] = field(default_factory=list)
    refused: list[tuple[float, str]] = field(default_factory=list)
    _acked: trio.Event | None = field(default=None, repr=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write until cancelled."""
        from confserv.client.resilient import open_resilient_client
        from confserv.wire.errors import ConnectionLostError, RequestError

        async with open_resilient_client(
            self.servers,
            app="bench-scs-writer",
            user="default",
            password=ADMIN_PASSWORD,
            reconnect_timeout=self.reconnect_timeout,
        ) as rc:
            task_status.started()
            n = 0
            while True:
                n += 1
                try:
                    answer = await rc.create("DN", {"name": f"w{os.getpid()}-{n}"})
                except ConnectionLostError:
                    self.lost.append(time.monotonic())
                    continue
                except RequestError as exc:
                    self.refused.append((time.monotonic(), exc.code))
                    continue
                self.acks.append(Ack(time.monotonic(), rc.address, int(answer["epoch"])))
                if self._acked is not None:
                    self._acked.set()
                    self._acked = None
                if not self.tight:
                    await trio.sleep(self.pace)

    async def next_ack(self) -> None:
        """Wait for the next acknowledged write."""
        if self._acked is None:
            self._acked = trio.Event()
        await self._acked.wait()

    def acks_from(self, address: tuple[str, int], since: float) -> int:
        """Acknowledged writes answered by ``address`` after ``since``."""
        count = 0
        for ack in reversed(self.acks):
            if ack.at <= since:
                break
            count += ack.address == address
        return count

    def first_ack(self, after: float, address: tuple[str, int], min_epoch: int) -> Ack | None:
        """The first write acknowledged by ``address`` at ``min_epoch`` or later after ``after``."""
        for ack in self._after(after):
            if ack.address == address and ack.epoch >= min_epoch:
                return ack
        return None

    def _after(self, after: float) -> list[Ack]:
        lo, hi = 0, len(self.acks)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.acks[mid].at <= after:
                lo = mid + 1
            else:
                hi = mid
        return self.acks[lo:]

    def first_lost(self, after: float) -> float | None:
        """When the first write after ``after`` was cut off (ConnectionLostError), if any."""
        return next((t for t in self.lost if t > after), None)


# -- fake management endpoints -------------------------------------------------------------


class _FakeService:
    """What :meth:`confserv.core.runtime.Runtime.status` reads of a ConfigService."""

    def __init__(self, epoch: int, serial: int) -> None:
        self.epoch = epoch
        self.last_serial = serial
        self.writable = False
        self.subscriber_count = 0

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
    from addp import AddpOptions, Link, serve
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


def fake_servers_main(argv: Sequence[str]) -> None:
    """``fake-servers N BASEPORT [ADDP_TIMEOUT [PORTS_FILE]]``: serve until killed.

    BASEPORT 0 lets the kernel choose. Once every port listens, the ports are
    written as JSON (``{"pid": ..., "ports": [...]}``) to PORTS_FILE (atomically)
    or to stdout. The secret is :data:`SECRET`.
    """
    if not 2 <= len(argv) <= 4:
        raise SystemExit("usage: fake-servers N BASEPORT [ADDP_TIMEOUT [PORTS_FILE]]")
    count, baseport = int(argv[0]), int(argv[1])
    addp_timeout = float(argv[2]) if len(argv) > 2 else 1.0
    ports_file = Path(argv[3]) if len(argv) > 3 else None
    _raise_nofile(2 * count + 256)

    async def main() -> None:
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
        trio.run(main)


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
    parts = [f"[scs]\ncontrol-port = {control}\ncontrol-secret = {SECRET}\nverbose = standard\n"]
    for i, mport in enumerate(ports):
        peer = i + 1 if i % 2 == 0 else i - 1
        parts.append(
            f"[cs{i}]\nhost = {HOST}\nport = {next(client_ports)}\nserver = cs{peer}\n"
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
    """The ``fake-servers`` child process (``python -m bench.bench_scs fake-servers ...``)."""

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
    extra = (f"{addp_timeout:g}", str(ports_file))
    log = (directory / "fake-servers.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_scs", "fake-servers", str(count), "0", *extra],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
        preexec_fn=partial(_raise_nofile, 2 * count + 256),
    )
    log.close()
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
