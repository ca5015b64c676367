"""The whole installation on the multi-host test bed, as the seed deploys it.

::

    A: lca, confserv (the pair's first member)     B: lca, confserv "backup"
    C: lca, scs (supervising through the three agents), the proxy
    D: PostgreSQL primary    E: its synchronous standby    F: the clients

``multi_host(..., supervisors=SUPERVISOR_HOSTS)`` (on a bed of
:data:`REDUNDANT_HOSTS`) builds the redundant installation of issue 14
instead: no supervisor on C but one on G and one on H (``scs --name scs-G``,
``scs-H``; each its own ``scs-<host>.conf``, state folder and log), both with
``[scs] database = scsdb``, the ``[scsdb]`` section on the bed's PostgreSQL
(D and E listed, as the servers' ``[db]``), so one is active and the other
standby.

Each host is a network namespace of :class:`~tests.multihost.netns.TestBed`;
the servers reach each other, the agents and the database over the bed's
bridge only. Every server is started by its host's agent; the supervisor has
no server of its own host. The database section lists D and E, so the
servers follow PostgreSQL to whichever is writable.

:class:`MultiHost` starts it all and gives the test what it needs to judge a
run: the supervisor's log (its events, with their times), ``scs status``
(run inside C), the pid of each server, and the clients' record
(:mod:`tests.multihost.workload`) turned into a chaos :class:`Record`.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confserv.logs.handlers import parse_stamp
from tests.chaos.checker import Record, Request
from tests.chaos.dblog import read_postgre, read_takes
from tests.helpers.system import BIN, CONTROL_SECRET, PASSWORD, SECRET
from tests.multihost.netns import TestBed
from tests.pg_replica import ReplicatedCluster, replicated_cluster

#: The pair's sections and their hosts; the proxy's.
MEMBERS = {"confserv": "A", "backup": "B"}
PROXY_HOST = "C"
CLIENT_HOST = "F"
HOSTS = ("A", "B", "C", "D", "E", "F")
#: The ports (the same on every host: each host is its own namespace).
PORT, MANAGEMENT_PORT, AGENT_PORT, CONTROL_PORT = 2120, 2121, 4999, 2190
AGENT_SECRET = "agent-secret-of-the-bed"
#: ADDP and the lease, as the benchmarks' targets say.
ADDP_TIMEOUT, LEASE_TTL = 1.0, 2.0
#: The redundant installation's supervisors: their own hosts (no agent, no server).
SUPERVISOR_HOSTS = ("G", "H")
REDUNDANT_HOSTS = (*HOSTS, *SUPERVISOR_HOSTS)
#: Its supervisor lease (``[scs] supervisor-lease-ttl``, ``-renew``, ``-retry``), seconds.
SUPERVISOR_TTL, SUPERVISOR_RENEW, SUPERVISOR_RETRY = 3.0, 1.0, 0.5

#: ``cfgctl init`` of the pair's first member, with the administrator's password.
INIT = ["env", f"CFG_PASSWORD={PASSWORD}", str(BIN / "cfgctl"), "init", "-s", "confserv"]

_PRIMARY = re.compile(r"'([^']+)' is (?:now )?primary at epoch (\d+)")
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \w+ (\d{5}) (.*)$")


@dataclass
class Event:
    """One line of the supervisor's log: when (``time.time()``), its id, its text."""

    at: float
    id: int
    text: str


@dataclass
class MultiHost:
    """The installation on ``bed`` (see the module docstring); build with :func:`multi_host`."""

    bed: TestBed
    tmp: Path
    pg: ReplicatedCluster
    conf: Path
    scs_conf: Path
    #: The supervisors' hosts: ``("C",)``, or two or more with the supervisor lease.
    supervisors: tuple[str, ...] = ("C",)
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: The first supervisor's process (the only one, by default).
    scs: subprocess.Popen[bytes] | None = None
    #: Every supervisor's process, by host.
    scs_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workload: subprocess.Popen[bytes] | None = None

    @property
    def redundant(self) -> bool:
        """Whether several supervisors share the work by the supervisor lease."""
        return len(self.supervisors) > 1

    def scs_conf_of(self, host: str) -> Path:
        """The scs.conf of the supervisor on ``host``."""
        return self.tmp / f"scs-{host}.conf" if self.redundant else self.scs_conf

    def scs_log(self, host: str | None = None) -> Path:
        """The log of the supervisor on ``host`` (default: the first one)."""
        host = host or self.supervisors[0]
        return self.tmp / (f"scs-{host}.log" if self.redundant else "scs.log")

    # -- processes ---------------------------------------------------------------

    def start_agent(self, host: str) -> None:
        """``lca`` on ``host`` (again, after a crash or a kill)."""
        out = (self.tmp / f"lca-{host}.log").open("ab")
        self.agents[host] = self.bed.spawn(
            host,
            [str(BIN / "lca"), "-c", str(self.tmp / f"lca-{host}.conf")],
            stdout=out,
            stderr=out,
            name=f"lca-{host}",
        )
        out.close()

    def start_scs(self, host: str | None = None) -> None:
        """``scs -f`` on ``host`` (default: the first supervisor's, C), its log appended
        to :meth:`scs_log`; named ``scs-<host>`` when redundant."""
        host = host or self.supervisors[0]
        argv = [str(BIN / "scs"), "-f", str(self.scs_conf_of(host))]
        if self.redundant:
            argv += ["--name", f"scs-{host}"]
        out = self.scs_log(host).open("ab")
        proc = self.bed.spawn(host, argv, stdout=out, stderr=out, name=f"scs-{host}")
        out.close()
        self.scs_procs[host] = proc
        if host == self.supervisors[0]:
            self.scs = proc
            self.bed.register("scs", proc.pid)

    def start_workload(self) -> None:
        """The writer and the proxy reader, on the client host."""
        pair = ",".join(f"{self.bed.address(h)}:{PORT}" for h in MEMBERS.values())
        proxy = f"{self.bed.address(PROXY_HOST)}:{PORT + 20}"
        out = (self.tmp / "workload.log").open("ab")
        self.workload = self.bed.spawn(
            CLIENT_HOST,
            [
                sys.executable,
                "-m",
                "tests.multihost.workload",
                str(self.tmp / "requests.jsonl"),
                str(self.tmp / "stop"),
                pair,
                proxy,
            ],
            stdout=out,
            stderr=out,
            cwd=Path(__file__).parents[2],
        )
        out.close()

    def restart_workload(self) -> None:
        """Stop the clients if they run, and start them again on a fresh record."""
        if self.workload is not None and self.workload.poll() is None:
            self.stop_workload()
        (self.tmp / "stop").unlink(missing_ok=True)
        (self.tmp / "requests.jsonl").unlink(missing_ok=True)
        self.start_workload()

    def stop_workload(self, timeout: float = 40.0) -> None:
        """Ask the clients to stop, and wait for them (their requests in flight end)."""
        (self.tmp / "stop").touch()
        if self.workload is not None:
            try:
                self.workload.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.workload.kill()
                self.workload.wait()

    def server_pids(self, section: str) -> list[int]:
        """Every process running ``section``'s Configuration Server of this installation,
        on any host (its shim not counted)."""
        program, conf = str(BIN / "confserv").encode(), str(self.conf).encode()
        found: dict[int, int] = {}  # pid -> parent pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the server itself (a script: its interpreter comes first), not its shim
            if program in argv[:2] and argv[-4:] == [b"-s", section.encode(), b"-c", conf]:
                found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        # A child the server forked, before its exec, has the server's command line: not
        # a second server (trio's first worker thread runs ctypes.util.find_library,
        # which forks /sbin/ldconfig; under load the sampler caught one, "ran 2 times").
        return [pid for pid, parent in found.items() if parent not in found]

    def server_pid(self, section: str) -> int | None:
        """The pid of ``section``'s Configuration Server, None if none runs."""
        pids = self.server_pids(section)
        return pids[0] if pids else None

    def server_count(self, section: str) -> int:
        """How many processes run ``section``'s server now (more than one: started twice)."""
        return len(self.server_pids(section))

    # -- what the supervisor says ------------------------------------------------

    def events(self, host: str | None = None) -> list[Event]:
        """The supervisor's log so far (``host``'s, or every supervisor's merged in time
        order), as events with their times."""
        out: list[Event] = []
        for one in [host] if host else self.supervisors:
            path = self.scs_log(one)
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                match = _LOG_LINE.match(line)
                if match:
                    stamp, event, text = match.groups()
                    at = parse_stamp(stamp)
                    out.append(Event(at, int(event), text))
        return sorted(out, key=lambda e: e.at) if host is None and self.redundant else out

    def logged(self, event: int, since: float = 0.0, host: str | None = None) -> list[Event]:
        """The lines of ``event`` logged at or after ``since`` (by ``host``'s supervisor)."""
        return [e for e in self.events(host) if e.id == event and e.at >= since]

    def wait_event(
        self, event: int, since: float = 0.0, timeout: float = 30.0, host: str | None = None
    ) -> Event:
        """The first line of ``event`` at or after ``since``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.logged(event, since, host)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} in the supervisor's log:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        """The end of each supervisor's log, for failure messages."""
        tails = []
        for host in self.supervisors:
            path = self.scs_log(host)
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            tails.append(f"-- {path.name}\n{tail}" if self.redundant else tail)
        return "\n".join(tails)

    def status_json(self, host: str | None = None) -> dict[str, Any]:
        """``scs status --json`` of the supervisor on ``host`` (run inside it: the control
        port is its loopback); ``{}`` if it does not answer."""
        host = host or self.supervisors[0]
        argv = [str(BIN / "scs"), "status", "-f", str(self.scs_conf_of(host)), "--json"]
        done = None if host in self.bed.crashed() else self.bed.run(host, argv, check=False)
        answer: dict[str, Any] = json.loads(done.stdout) if done and done.returncode == 0 else {}
        return answer

    def active_host(self) -> str | None:
        """The host of the supervisor that says it is acting now (None: none does)."""
        for host in self.supervisors:
            if (self.status_json(host).get("supervisor") or {}).get("acting"):
                return host
        return None

    def status(self, host: str | None = None) -> dict[str, dict[str, Any]]:
        """The servers' rows of ``scs status --json``: of ``host``'s supervisor, or, by
        default, of the only one (C) or of the acting one ({} while none acts)."""
        if host is None and self.redundant:
            host = self.active_host()
            if host is None:
                return {}
        answer = self.status_json(host)
        return {row["section"]: row for row in answer.get("servers", [])}

    def wait_status(
        self, predicate: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 60.0
    ) -> dict[str, dict[str, Any]]:
        """Poll ``scs status`` until ``predicate`` holds (TimeoutError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.status()
            if rows and predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"status never as wanted: {rows}\n{self.log_tail()}")
            time.sleep(0.2)

    # -- what the clients saw ----------------------------------------------------

    def requests(self) -> list[Request]:
        """Every request the clients recorded so far."""
        path = self.tmp / "requests.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                out.append(Request(**json.loads(line)))
        return out

    def wait_acks(self, count: int, since: float, timeout: float = 30.0) -> list[Request]:
        """Until ``count`` writes started at or after ``since`` were acknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            acks = [
                r
                for r in self.requests()
                if r.op == "write" and r.outcome == "ok" and r.start >= since
            ]
            if len(acks) >= count:
                return acks
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(acks)} of {count} writes acknowledged since the fault")
            time.sleep(0.05)

    def record(self) -> Record:
        """The clients' requests (a server named by its section), the promotions of the
        supervisor's log and what the writable database holds (for the oracle)."""
        sections = {f"{self.bed.address(h)}:{PORT}": s for s, h in MEMBERS.items()}
        requests = self.requests()
        for r in requests:
            r.server = sections.get(r.server or "", r.server)
        record = Record(
            requests=requests,
            detection_bound=2 * ADDP_TIMEOUT,
            settle=LEASE_TTL + 2 * ADDP_TIMEOUT + 5,
        )
        # Every primary the supervisor saw, by epoch, first sight: promoted by it (40306)
        # or found so (40203: at start-up, or a server that took an expired lease).
        first: dict[int, tuple[float, int, str]] = {}
        for event in self.events():
            match = _PRIMARY.search(event.text) if event.id in (40203, 40306) else None
            if match and int(match.group(2)) not in first:
                epoch = int(match.group(2))
                first[epoch] = (event.at, epoch, match.group(1))
        record.promotions = sorted(first.values())
        names = self.pg.writable.psql("SELECT name FROM cfg_object", dbname=self.dbname)
        record.committed = {line.strip() for line in names.splitlines() if line.strip()}
        database = read_postgre(self.pg.writable, self.dbname)
        database.takes = read_takes({s: self.tmp / h / f"{s}.log" for s, h in MEMBERS.items()})
        record.database = database
        return record

    @property
    def dbname(self) -> str:
        """The Configuration Database's name."""
        return "cfgha"

    def stop(self) -> None:
        """Stop the clients and the supervisors (the only one stops the servers through
        the agents; redundant ones leave them running, the bed's teardown kills them)."""
        self.stop_workload()
        running = [p for p in self.scs_procs.values() if p.poll() is None]
        for proc in running:
            proc.send_signal(2)
        for proc in running:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _files(
    bed: TestBed, tmp: Path, pg: ReplicatedCluster, supervisors: tuple[str, ...] = ("C",)
) -> tuple[Path, Path]:
    """confserv.conf (all three servers' sections), scs.conf (one per supervisor when
    several: ``scs-<host>.conf``; the first one's returned) and each agent's lca.conf."""
    addr = bed.address
    addp = f"protocol = addp\naddp-timeout = {ADDP_TIMEOUT:g}\naddp-remote-timeout = 1\n"
    lease = f"lease-ttl = {LEASE_TTL:g}\nlease-renew = 0.4\n"
    text = ""
    for section, host in MEMBERS.items():
        text += (
            f"[{section}]\nport = {PORT}\nmanagement-port = {MANAGEMENT_PORT}\n"
            f"management-secret = {SECRET}\nserver = db\nlisten-address = {addr(host)}\n"
            f"{lease}{addp}"
        )
    masters = ",".join(f"{addr(h)}:{MANAGEMENT_PORT}" for h in MEMBERS.values())
    text += (
        f"[proxy]\nmode = proxy\nport = {PORT + 20}\nmanagement-port = {MANAGEMENT_PORT + 20}\n"
        f"management-secret = {SECRET}\nlisten-address = {addr(PROXY_HOST)}\nmaster = {masters}\n"
    )
    database = (
        f"dbengine = postgre\nhost = {pg.hosts}\n"
        f"dbname = cfgha\nusername = {pg.user}\npassword = {pg.password}\n"
        "reconnect-timeout = 0.5\nresponse-timeout = 10\nconnect-timeout = 2\n"
    )
    text += f"[log]\nverbose = all\n[db]\n{database}"
    conf = _write(tmp / "confserv.conf", text)
    scs = ""
    for host in ("A", "B", "C"):
        scs += (
            f"[host{host}]\ntype = host\naddress = {addr(host)}\nagent-port = {AGENT_PORT}\n"
            f"agent-secret = {AGENT_SECRET}\n"
        )
        (tmp / host).mkdir(exist_ok=True)
        _write(
            tmp / f"lca-{host}.conf",
            f"[lca]\nport = {AGENT_PORT}\nagent-secret = {AGENT_SECRET}\n"
            f"state-dir = {tmp / host / 'lca-state'}\nlisten-address = {addr(host)}\n"
            f"host-name = host{host}\n",
        )
    peers = {"confserv": "backup", "backup": "confserv"}
    for section, host in [*MEMBERS.items(), ("proxy", PROXY_HOST)]:
        link = f"server = {peers[section]}\n" if section in peers else "type = proxy\n"
        ports = (PORT + 20, MANAGEMENT_PORT + 20) if section == "proxy" else (PORT, MANAGEMENT_PORT)
        scs += (
            f"[{section}]\nhost = host{host}\nport = {ports[0]}\n{link}"
            f"management-port = {ports[1]}\nmanagement-secret = {SECRET}\n"
            f"command = {BIN / 'confserv'} -s {section} -c {conf}\n"
            f"working-directory = {tmp / host}\n{addp}"
            "failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n"
        )
    own = f"[scs]\ncontrol-port = {CONTROL_PORT}\ncontrol-secret = {CONTROL_SECRET}\n"
    if len(supervisors) == 1:
        return conf, _write(tmp / "scs.conf", f"{own}state-dir = {tmp / 'scs-state'}\n{scs}")
    own += (
        f"database = scsdb\nsupervisor-lease-ttl = {SUPERVISOR_TTL:g}\n"
        f"supervisor-lease-renew = {SUPERVISOR_RENEW:g}\n"
        f"supervisor-lease-retry = {SUPERVISOR_RETRY:g}\n"
    )
    paths = [
        _write(
            tmp / f"scs-{host}.conf",
            f"{own}state-dir = {tmp / f'scs-state-{host}'}\n{scs}[scsdb]\n{database}",
        )
        for host in supervisors
    ]
    return conf, paths[0]


@contextlib.contextmanager
def multi_host(
    bed: TestBed, tmp: Path, *, workload: bool = True, supervisors: tuple[str, ...] = ("C",)
) -> Iterator[MultiHost]:
    """Start PostgreSQL on D and E, the agents, ``cfgctl init``, ``scs`` on each of
    ``supervisors`` (the first one first, so it is the active one; and the clients);
    on exit stop it all (the bed's own teardown then removes what is left)."""
    with replicated_cluster(
        primary_listen=bed.address("D"),
        standby_listen=bed.address("E"),
        primary_prefix=bed.command("D", []),
        standby_prefix=bed.command("E", []),
        clients=("198.18.0.0/24",),
    ) as pg:
        pg.create_database("cfgha")
        conf, scs_conf = _files(bed, tmp, pg, supervisors)
        system = MultiHost(bed, tmp, pg, conf, scs_conf, supervisors)
        bed.run(
            "A",
            [*INIT, "-c", str(conf), "--backup-section", "backup"],
            timeout=60,
        )
        try:
            for host in ("A", "B", "C"):
                system.start_agent(host)
            system.start_scs()
            system.wait_status(healthy, timeout=90)
            for host in supervisors[1:]:
                system.start_scs(host)
            if workload:
                system.start_workload()
            yield system
        finally:
            system.stop()


def healthy(rows: dict[str, dict[str, Any]]) -> bool:
    """One primary, one backup, the proxy a proxy, all running."""
    roles = {rows.get(s, {}).get("role") for s in MEMBERS}
    return (
        roles == {"primary", "backup"}
        and rows.get("proxy", {}).get("role") == "proxy"
        and all(r.get("state") == "running" for r in rows.values())
    )


def primary_of(rows: dict[str, dict[str, Any]]) -> str:
    """The member the rows show as primary (StopIteration if none)."""
    return next(s for s in MEMBERS if rows[s]["role"] == "primary")
