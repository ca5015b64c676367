"""A whole system run through ``scs -f`` on generated files, for end-to-end and chaos runs.

Used by ``tests/scs/test_e2e.py`` and ``tests/chaos/real.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from addp import LinkEnded
from confserv.client.resilient import open_resilient_client
from confserv.client.session import open_client, open_management
from confserv.wire.errors import ConnectionLostError, RequestError
from scs.config import load_scs_settings


def sqlite_write_lock_free(path: str | Path) -> bool:
    """Whether no process holds the SQLite database's write lock right now."""
    conn = sqlite3.connect(str(path), timeout=0.05)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


async def stop_outside_a_transaction(pid: int, sqlite_file: str | Path | None) -> None:
    """SIGSTOP ``pid``; with SQLite (``sqlite_file``), not while it holds the write lock.

    A process stopped inside a SQLite transaction keeps the database's lock,
    and nobody can take the lease until it is resumed or killed (the supervisor
    kills it after ``fence-after``). Tests about the lease running out stop
    the primary between transactions.
    """
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        if sqlite_file is None or sqlite_write_lock_free(sqlite_file):
            return
        os.kill(pid, signal.SIGCONT)
        await trio.sleep(0.003)
    raise AssertionError("the process never left its transaction")


async def stop_inside_a_transaction(pid: int, sqlite_file: str | Path) -> float:
    """SIGSTOP ``pid`` while it holds the SQLite database's write lock; the trio time
    it was stopped. The worst case for a failover on SQLite: nobody can even take
    the lease until the process is killed."""
    with trio.fail_after(60):
        while True:
            os.kill(pid, signal.SIGSTOP)
            stopped = trio.current_time()
            if not sqlite_write_lock_free(sqlite_file):
                # Another process's short transaction (the backup renewing its claim)
                # holds the lock for a millisecond; the stopped one holds it for good.
                await trio.sleep(0.05)
                if not sqlite_write_lock_free(sqlite_file):
                    return stopped
            os.kill(pid, signal.SIGCONT)
            await trio.sleep(0.002)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BIN = Path(sys.executable).parent
SECRET = "s3"
PASSWORD = "pw"


def cfgctl_init(conf: Path, password: str = PASSWORD) -> None:
    """``cfgctl init -s confserv -c CONF --backup-section backup``, as an operator runs it."""
    cfgctl = str(BIN / "cfgctl")
    subprocess.run(
        [cfgctl, "init", "-s", "confserv", "-c", str(conf), "--backup-section", "backup"],
        env={**os.environ, "CFG_PASSWORD": password},
        check=True,
        capture_output=True,
        timeout=60,
    )


class System:
    """A generated scs.conf + confserv.conf, and the running ``scs`` process.

    The chaos harness puts relays between the components: ``server_lines``
    adds options to a server's section of confserv.conf (``advertise-*``),
    ``reach`` overrides the management port the supervisor uses per section,
    ``masters`` the proxy's list of masters, and ``db_of`` names each
    server's database section (``extra_conf`` then defines it).
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
    ) -> None:
        self.tmp = tmp
        p = [free_port() for _ in range(7)]
        self.ports = {"confserv": p[0], "backup": p[2], "proxy": p[4]}
        self.management_ports = {"confserv": p[1], "backup": p[3], "proxy": p[5]}
        self.conf = tmp / "confserv.conf"
        lines = server_lines or {}
        db_of = db_of or {}

        def common(section: str) -> str:
            return (
                f"management-secret = {SECRET}\nserver = {db_of.get(section, 'db')}\n"
                "lease-ttl = 2\nlease-renew = 0.4\nprotocol = addp\n"
                f"addp-timeout = 1\n{lines.get(section, '')}"
            )

        master_ports = masters or [p[1], p[3]]
        self.conf.write_text(
            f"[confserv]\nport = {p[0]}\nmanagement-port = {p[1]}\n{common('confserv')}"
            f"[backup]\nport = {p[2]}\nmanagement-port = {p[3]}\n{common('backup')}"
            f"[proxy]\nmode = proxy\nport = {p[4]}\nmanagement-port = {p[5]}\n"
            f"management-secret = {SECRET}\n"
            f"master = {','.join(f'127.0.0.1:{m}' for m in master_ports)}\n"
            "[log]\nverbose = all\n[db]\n"
            + (db_section or "dbengine = sqlite\ndbname = cfg.sqlite\n")
            + extra_conf
        )
        reach = reach or {}
        confserv = BIN / "confserv"

        def server(section: str, port: int, mport: int, peer: str | None) -> str:
            link = f"server = {peer}\n" if peer else "type = proxy\n"
            return (
                f"[{section}]\nhost = 127.0.0.1\nport = {port}\n{link}"
                f"management-port = {mport}\nmanagement-secret = {SECRET}\n"
                f"command = {confserv} -s {section} -c {self.conf}\nworking-directory = {tmp}\n"
                "protocol = addp\naddp-timeout = 1\naddp-remote-timeout = 1\n"
                "failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n"
            )

        self.scs_conf = tmp / "scs.conf"
        self.scs_conf.write_text(
            f"[scs]\ncontrol-port = {p[6]}\ncontrol-secret = {SECRET}\n"
            + server("confserv", p[0], reach.get("confserv", p[1]), "backup")
            + server("backup", p[2], reach.get("backup", p[3]), "confserv")
            + server("proxy", p[4], reach.get("proxy", p[5]), None)
            + extra_sections
        )
        self.settings = load_scs_settings(self.scs_conf)
        cfgctl_init(self.conf)
        self.logfile = tmp / "scs.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()  # every server pid a status showed

    def start(self, append: bool = False) -> None:
        with self.logfile.open("ab" if append else "wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "scs"), "-f", str(self.scs_conf)], stdout=out, stderr=out
            )

    def stop(self) -> None:
        """Stop the supervisor (SIGINT: it stops its servers), then any server it left.

        A server outlives its supervisor when the supervisor was killed and
        the test ends before a new one adopted it.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.seen_pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    mine = str(self.conf).encode() in f.read()
                if mine:
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass

    def log(self) -> str:
        return self.logfile.read_text()

    def logged(self, event_id: int) -> int:
        return sum(f" {event_id:05d} " in line for line in self.log().splitlines())

    async def status(self) -> dict[str, dict[str, Any]]:
        assert self.settings.control_port is not None
        async with open_management("127.0.0.1", self.settings.control_port, SECRET) as m:
            answer = await m.session.request("status")
        rows = {row["section"]: row for row in answer["servers"]}
        self.seen_pids.update(int(r["pid"]) for r in rows.values() if r.get("pid"))
        return rows

    async def control(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.settings.control_port is not None
        async with open_management("127.0.0.1", self.settings.control_port, SECRET) as m:
            answer: dict[str, Any] = await m.session.request(op, **args)
            return answer

    async def wait(self, predicate: Any, timeout: float = 30) -> dict[str, dict[str, Any]]:
        with trio.fail_after(timeout):
            while True:
                try:
                    rows = await self.status()
                    if predicate(rows):
                        return rows
                except (OSError, RequestError, ConnectionLostError, LinkEnded):
                    pass
                await trio.sleep(0.05)

    def address(self, section: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[section])


def healthy(rows: dict[str, dict[str, Any]]) -> bool:
    roles = {rows["confserv"]["role"], rows["backup"]["role"]}
    return (
        roles == {"primary", "backup"}
        and rows["proxy"]["role"] == "proxy"
        and all(r["state"] == "running" for r in rows.values() if r["section"] != "flappy")
    )


def primary_of(rows: dict[str, dict[str, Any]]) -> str:
    return next(n for n in ("confserv", "backup") if rows[n]["role"] == "primary")


class Writer:
    """A client writing throughout, through the resilient client library."""

    def __init__(self, servers: list[tuple[str, int]], password: str = PASSWORD) -> None:
        self.servers = servers
        self.password = password
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self.failed: list[str] = []
        self.stop = trio.Event()

    @classmethod
    def for_system(cls, system: System) -> Writer:
        """A writer to the pair of ``system``."""
        return cls([system.address("confserv"), system.address("backup")])

    async def run(self) -> None:
        async with open_resilient_client(
            self.servers,
            app="w",
            user="default",
            password=self.password,
            reconnect_timeout=0.02,
        ) as rc:
            n = 0
            while not self.stop.is_set():
                name = f"w{n}"
                n += 1
                try:
                    await rc.create("DN", {"name": name})
                    self.acked.append(name)
                except ConnectionLostError:
                    self.unknown.append(name)
                except RequestError:
                    self.failed.append(name)  # refused outright: not done, not acknowledged
                await trio.sleep(0.01)

    async def until(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.acked) < count:
                await trio.sleep(0.01)

    async def check(self, server: tuple[str, int]) -> None:
        async with open_client([server], app="chk", user="default", password=self.password) as c:
            names = {d["name"] for d in await c.read("DN")}
        assert set(self.acked) <= names, "an acknowledged write was lost"
