"""A whole system run through ``scs -f`` on generated files, and a client writing throughout.

Shared by the end-to-end tests (``tests/scs``, ``tests/confserv``), the chaos
harness (``tests/chaos/real.py``) and the benchmarks (``bench/``):
:func:`write_confserv_conf` writes a pair's (and a proxy's) ``confserv.conf``,
:class:`Supervisor` is one ``scs -f`` process with its control port and event
log, :class:`System` the generated files under their supervisor, and
:class:`Writer` a resilient client creating DNs in a loop that records every
outcome. ``tests/helpers/nodes.py`` runs the same files without a supervisor.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from addp import AddpError, LinkEnded
from confserv.client.resilient import open_resilient_client
from confserv.client.session import open_client, open_control, open_management
from confserv.model.passwords import COST_ENV
from confserv.wire.errors import ConfServError, ConnectionLostError, RequestError
from confserv.wire.tls import ClientTls
from scs.config import load_scs_settings

from .sqlite_stops import sqlite_write_lock_free as sqlite_write_lock_free
from .sqlite_stops import stop_inside_a_transaction as stop_inside_a_transaction
from .sqlite_stops import stop_outside_a_transaction as stop_outside_a_transaction
from .tls import TlsFiles

Rows = dict[str, dict[str, Any]]


#: Ports :func:`free_port` handed out lately, oldest first: never handed out again while
#: here (bind to port 0 gave a repeat within 6 calls in 19 of 20,000 tries here).
_HANDED_OUT: deque[int] = deque(maxlen=4096)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (nothing listens on it), and none of the
    last 4,096 this process was given: a pair's six ports are distinct (port and
    management-port equal is a configuration error: the likely cause of a
    bench_db_failover crash in cfgctl init)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port


BIN = Path(sys.executable).parent
SECRET = "s3"
#: The supervisor's control-secret: a secret of its own, not the management one.
CONTROL_SECRET = "c4"
PASSWORD = "pw"
#: The password cost of the systems under test (and of every process they start):
#: scrypt's cheapest, the simulation's (tests/sim/system.py cheap_hash), so the
#: suite's and the chaos harness's many logins stay fast and no stored hash is
#: weaker than it (none is rehashed). Production keeps OWASP's (docs/configuration.md).
TEST_PASSWORD_COST = "n=2,r=1,p=1"
os.environ.setdefault(COST_ENV, TEST_PASSWORD_COST)
#: The generated files' sections: the pair, then the proxy.
MEMBERS = ("confserv", "backup")

#: scs.conf sections of a pair that is never started (``/bin/true``, autostart off): for
#: the command-line tests, after an ``[scs]`` section of their own.
IDLE_PAIR = """[a]
port = 3000
server = b
management-port = 3001
management-secret = x
command = /bin/true
autostart = false
[b]
port = 3010
server = a
management-port = 3011
management-secret = x
command = /bin/true
autostart = false
"""
PROXY = "proxy"


def cfgctl_init(conf: Path, password: str = PASSWORD) -> None:
    """``cfgctl init -s confserv -c CONF --backup-section backup``, as an operator runs it."""
    cfgctl = str(BIN / "cfgctl")
    done = subprocess.run(
        [cfgctl, "init", "-s", "confserv", "-c", str(conf), "--backup-section", "backup"],
        env={**os.environ, "CFG_PASSWORD": password},
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"cfgctl init -c {conf} exited with {done.returncode}: {said}")


def write_confserv_conf(
    conf: Path,
    ports: Mapping[str, tuple[int, int]],
    *,
    lease_ttl: float = 2.0,
    lease_renew: float = 0.4,
    addp_timeout: float | None = 1.0,
    verbose: str = "all",
    db_section: str | None = None,
    server_lines: Mapping[str, str] | None = None,
    db_of: Mapping[str, str] | None = None,
    masters: Sequence[int] | None = None,
    extra_conf: str = "",
) -> None:
    """Write the pair's ``confserv.conf``: ``[confserv]``, ``[backup]`` and, if ``ports``
    has one, a ``[proxy]`` following both, on one database (SQLite ``cfg.sqlite`` unless
    ``db_section`` says otherwise).

    ``ports`` maps a section to its (client, management) ports; ``addp_timeout``
    None leaves ADDP off; ``server_lines`` adds options to a member's section,
    ``db_of`` names its database section (default ``db``; ``extra_conf`` then
    defines it), ``masters`` overrides the proxy's management ports of the pair.
    ``server_lines`` may name the proxy too (``PROXY``).
    """
    lines, dbs = server_lines or {}, db_of or {}
    addp = "" if addp_timeout is None else f"protocol = addp\naddp-timeout = {addp_timeout:g}\n"
    text = "".join(
        f"[{s}]\nport = {ports[s][0]}\nmanagement-port = {ports[s][1]}\n"
        f"management-secret = {SECRET}\nserver = {dbs.get(s, 'db')}\n"
        f"lease-ttl = {lease_ttl:g}\nlease-renew = {lease_renew:g}\n{addp}{lines.get(s, '')}"
        for s in MEMBERS
    )
    if PROXY in ports:
        master = ",".join(f"127.0.0.1:{m}" for m in masters or [ports[s][1] for s in MEMBERS])
        text += (
            f"[{PROXY}]\nmode = proxy\nport = {ports[PROXY][0]}\n"
            f"management-port = {ports[PROXY][1]}\nmanagement-secret = {SECRET}\n"
            f"master = {master}\n{lines.get(PROXY, '')}"
        )
    db = db_section or "dbengine = sqlite\ndbname = cfg.sqlite\n"
    conf.write_text(f"{text}[log]\nverbose = {verbose}\n[db]\n{db}{extra_conf}")
    conf.chmod(0o600)  # it holds management-secret: no warning at load


class Supervisor:
    """One ``scs -f FILE`` process, its control port and its event log (a file)."""

    def __init__(
        self, scs_conf: Path, control_port: int, logfile: Path, name: str | None = None
    ) -> None:
        self.scs_conf = scs_conf
        self.control_port = control_port
        self.logfile = logfile
        #: ``scs --name`` (None: the host name), for several supervisors of one installation.
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        #: ``time.monotonic()`` just before the last start.
        self.started_at = 0.0
        #: How the test reaches the control port and the servers (None: plain TCP).
        self.client_tls: ClientTls | None = None

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, append: bool = False) -> None:
        """Spawn ``scs -f``, its output to :attr:`logfile` (appended with ``append``)."""
        with self.logfile.open("ab" if append else "wb") as out:
            self.started_at = time.monotonic()
            named = [] if self.name is None else ["--name", self.name]
            self.proc = subprocess.Popen(
                [str(BIN / "scs"), "-f", str(self.scs_conf), *named], stdout=out, stderr=out
            )

    def stop(self) -> None:
        """Stop the supervisor (SIGINT: it stops its servers), SIGKILL after 30 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def check_alive(self) -> None:
        """RuntimeError with the log's tail if the supervisor has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"scs exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log(self) -> str:
        """The supervisor's event log so far."""
        if not self.logfile.exists():
            return ""
        return self.logfile.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def logged(self, event_id: int) -> int:
        """How many lines of the log carry ``event_id``."""
        return sum(f" {event_id:05d} " in line for line in self.log().splitlines())

    async def control(self, op: str, **args: Any) -> dict[str, Any]:
        """One request on the control port (a fresh authenticated connection)."""
        async with open_control(self.control_port, CONTROL_SECRET, tls=self.client_tls) as m:
            answer: dict[str, Any] = await m.session.request(op, **args)
            return answer

    async def status(self) -> Rows:
        """The supervisor's status rows by section."""
        answer = await self.control("status")
        return {row["section"]: row for row in answer["servers"]}

    async def wait(
        self, predicate: Callable[[Rows], bool], timeout: float = 30, every: float = 0.05
    ) -> Rows:
        """Poll the status every ``every`` s until ``predicate`` holds (TooSlowError after
        ``timeout``)."""
        with trio.fail_after(timeout):
            while True:
                try:
                    rows = await self.status()
                    if predicate(rows):
                        return rows
                except (OSError, RequestError, ConnectionLostError, LinkEnded):
                    pass
                await trio.sleep(every)


class System(Supervisor):
    """A generated scs.conf + confserv.conf, and the running ``scs`` process.

    The pair and (unless ``proxy`` is false) a proxy, ADDP at 1 s everywhere,
    a 2 s lease renewed every 0.4 s, the servers' log at ``verbose``;
    ``scs_lines`` adds options to every supervised section of scs.conf.
    The chaos harness puts relays between the components: ``server_lines``
    adds options to a server's section of confserv.conf (``advertise-*``),
    ``reach`` overrides the management port the supervisor uses per section,
    ``masters`` the proxy's list of masters, and ``db_of`` names each
    server's database section (``extra_conf`` then defines it); ``tls`` puts
    every port and link on TLS with those files (the test's clients too);
    ``hosts`` gives a section's ``host`` (a host section of ``extra_sections``);
    ``own_lines`` adds options to ``[scs]`` (``database = ...``: the election).
    """

    def __init__(
        self,
        tmp: Path,
        extra_sections: str = "",
        db_section: str | None = None,
        *,
        server_lines: dict[str, str] | None = None,
        reach: dict[str, int] | None = None,
        masters: list[int] | None = None,
        db_of: dict[str, str] | None = None,
        extra_conf: str = "",
        proxy: bool = True,
        verbose: str = "all",
        scs_lines: str = "",
        tls: TlsFiles | None = None,
        hosts: dict[str, str] | None = None,
        own_lines: str = "",
    ) -> None:
        self.tmp = tmp
        sections = (*MEMBERS, PROXY) if proxy else MEMBERS
        tls_lines = "" if tls is None else tls.lines()
        if tls is not None:
            server_lines = {s: (server_lines or {}).get(s, "") + tls_lines for s in sections}
        ports = {s: (free_port(), free_port()) for s in sections}
        self.ports = {s: p[0] for s, p in ports.items()}
        self.management_ports = {s: p[1] for s, p in ports.items()}
        self.conf = tmp / "confserv.conf"
        write_confserv_conf(
            self.conf,
            ports,
            verbose=verbose,
            db_section=db_section,
            server_lines=server_lines,
            db_of=db_of,
            masters=masters,
            extra_conf=extra_conf,
        )
        reach = reach or {}
        confserv = BIN / "confserv"
        peers = {"confserv": "backup", "backup": "confserv"}

        def server(section: str) -> str:
            link = f"server = {peers[section]}\n" if section in peers else "type = proxy\n"
            return (
                f"[{section}]\nhost = {(hosts or {}).get(section, '127.0.0.1')}\n"
                f"port = {self.ports[section]}\n{link}"
                f"management-port = {reach.get(section, self.management_ports[section])}\n"
                f"management-secret = {SECRET}\n"
                f"command = {confserv} -s {section} -c {self.conf}\nworking-directory = {tmp}\n"
                "protocol = addp\naddp-timeout = 1\naddp-remote-timeout = 1\n"
                f"failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n{scs_lines}"
            )

        self.scs_conf = tmp / "scs.conf"
        self.scs_conf.write_text(
            f"[scs]\ncontrol-port = {free_port()}\ncontrol-secret = {CONTROL_SECRET}\n{tls_lines}"
            + own_lines
            + "".join(server(s) for s in sections)
            + extra_sections
        )
        self.scs_conf.chmod(0o600)  # it holds control-secret
        self.settings = load_scs_settings(self.scs_conf)
        cfgctl_init(self.conf)
        assert self.settings.control_port is not None
        super().__init__(self.scs_conf, self.settings.control_port, tmp / "scs.log")
        self.client_tls = None if tls is None else tls.client()
        self.seen_pids: set[int] = set()  # every server pid a status showed

    def stop(self) -> None:
        """Stop the supervisor (SIGINT: it stops its servers), then any server it left.

        A server outlives its supervisor when the supervisor was killed and
        the test ends before a new one adopted it.
        """
        super().stop()
        for pid in self.seen_pids:
            if self.owns(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a server process of this system (its command names our file)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return str(self.conf).encode() in f.read()
        except FileNotFoundError:
            return False

    async def status(self) -> Rows:
        """The status rows; every server pid seen is remembered for :meth:`stop`."""
        rows = await super().status()
        self.seen_pids.update(int(r["pid"]) for r in rows.values() if r.get("pid"))
        return rows

    async def member_status(self, section: str) -> dict[str, Any] | None:
        """A server's own ``status`` from its management port (None when it does not answer)."""
        try:
            with trio.fail_after(3):
                async with open_management(
                    "127.0.0.1",
                    self.management_ports[section],
                    SECRET,
                    timeout=2,
                    tls=self.client_tls,
                ) as m:
                    return await m.status()
        except (OSError, ConfServError, AddpError, trio.BrokenResourceError, trio.TooSlowError):
            return None

    def address(self, section: str) -> tuple[str, int]:
        """``(host, client port)`` of a server."""
        return ("127.0.0.1", self.ports[section])

    def server_log(self, section: str) -> str:
        """What a server's processes wrote (the supervisor appends them to one file)."""
        path = self.tmp / f"{section}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def healthy(rows: Rows) -> bool:
    """One primary and one backup, the proxy (if any) a proxy, everything running."""
    roles = {rows["confserv"]["role"], rows["backup"]["role"]}
    return (
        roles == {"primary", "backup"}
        and (PROXY not in rows or rows[PROXY]["role"] == "proxy")
        and all(r["state"] == "running" for r in rows.values() if r["section"] != "flappy")
    )


def primary_of(rows: Rows) -> str:
    """The member the rows show as primary (StopIteration if none)."""
    return next(n for n in MEMBERS if rows[n]["role"] == "primary")


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write: when (``time.monotonic()``), which server answered, the epoch."""

    at: float
    address: tuple[str, int] | None
    epoch: int


class Writer:
    """A client creating DNs throughout, through the resilient client library.

    Names of acknowledged writes go to ``acked`` (when, from which server and
    at what epoch to ``acks``), of writes cut off with the outcome unknown to
    ``unknown`` (their times to ``lost``), of writes refused outright to
    ``failed`` (time and code to ``refused``). It pauses ``pace`` seconds
    after each write, except after an acknowledged one while ``tight`` is set
    and after a failed one without ``pause_on_error``.
    """

    def __init__(
        self,
        servers: list[tuple[str, int]],
        password: str = PASSWORD,
        *,
        pace: float = 0.01,
        pause_on_error: bool = True,
        tls: ClientTls | None = None,
    ) -> None:
        self.servers, self.tls = servers, tls
        self.password = password
        self.pace = pace
        self.pause_on_error = pause_on_error
        self.tight = False
        self.acked: list[str] = []
        self.acks: list[Ack] = []
        self.unknown: list[str] = []
        self.lost: list[float] = []
        self.failed: list[str] = []
        self.refused: list[tuple[float, str]] = []
        self.stop = trio.Event()
        self._acked = trio.Event()

    @classmethod
    def for_system(cls, system: System, **options: Any) -> Writer:
        """A writer to the pair of ``system`` (over TLS when the system is)."""
        options.setdefault("tls", system.client_tls)
        return cls([system.address("confserv"), system.address("backup")], **options)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write until :attr:`stop` is set (or cancelled); started once the client is open."""
        async with open_resilient_client(
            self.servers,
            app="w",
            user="default",
            password=self.password,
            reconnect_timeout=0.02,
            tls=self.tls,
        ) as rc:
            task_status.started()
            n = 0
            while not self.stop.is_set():
                name = f"w{n}"
                n += 1
                try:
                    answer = await rc.create("DN", {"name": name})
                except ConnectionLostError:
                    self.unknown.append(name)
                    self.lost.append(time.monotonic())
                    if not self.pause_on_error:
                        continue
                except RequestError as exc:
                    self.failed.append(name)  # refused outright: not done, not acknowledged
                    self.refused.append((time.monotonic(), exc.code))
                    if not self.pause_on_error:
                        continue
                else:
                    self.acks.append(Ack(time.monotonic(), rc.address, int(answer["epoch"])))
                    self.acked.append(name)
                    self._acked.set()
                    self._acked = trio.Event()
                    if self.tight:
                        continue
                await trio.sleep(self.pace)

    async def until(self, count: int) -> None:
        """Wait until ``count`` writes are acknowledged (TooSlowError after 30 s)."""
        with trio.fail_after(30):
            while len(self.acked) < count:
                await trio.sleep(0.01)

    async def next_ack(self) -> None:
        """Wait for the next acknowledged write."""
        await self._acked.wait()

    def acks_from(self, address: tuple[str, int], since: float) -> int:
        """Acknowledged writes answered by ``address`` after ``since``."""
        return sum(a.address == address for a in self._after(since))

    def first_ack(self, after: float, address: tuple[str, int], min_epoch: int) -> Ack | None:
        """The first write acknowledged by ``address`` at ``min_epoch`` or later after ``after``."""
        return next(
            (a for a in self._after(after) if a.address == address and a.epoch >= min_epoch), None
        )

    def first_lost(self, after: float) -> float | None:
        """When the first write after ``after`` was cut off, if any."""
        return next((t for t in self.lost if t > after), None)

    def _after(self, after: float) -> list[Ack]:
        return self.acks[bisect.bisect_right(self.acks, after, key=lambda a: a.at) :]

    async def check(self, server: tuple[str, int]) -> None:
        """AssertionError unless every acknowledged write is on ``server``."""
        async with open_client(
            [server], app="chk", user="default", password=self.password, tls=self.tls
        ) as c:
            names = {d["name"] for d in await c.read("DN")}
        assert set(self.acked) <= names, "an acknowledged write was lost"


async def sigkill_primary_under_writes(system: System, writer: Writer) -> tuple[str, str]:
    """SIGKILL the pair's primary while ``writer`` writes, after 20 acknowledged writes;
    ``(old, new)`` once the other server is primary and 20 more writes are acknowledged
    (``writer`` is stopped then)."""
    rows = await system.wait(healthy, timeout=60)
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(20)
        os.kill(rows[old]["pid"], signal.SIGKILL)
        await system.wait(lambda r: r[new]["role"] == "primary")
        await writer.until(len(writer.acked) + 20)
        writer.stop.set()
    return old, new
