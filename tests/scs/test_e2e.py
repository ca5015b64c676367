"""The whole system through ``scs -f`` on a generated file: real processes, real signals.

SQLite under the pair (the pair itself is tested on PostgreSQL too, in
tests/confserv). Waits are for conditions under deadlines; the log is read
for the failover story's event ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from confserv.client import open_client
from confserv.errors import ConnectionLostError, RequestError
from confserv.resilient import open_resilient_client
from scs.config import load_scs_settings

from ..confserv.test_cli import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
SECRET = "s3"
PASSWORD = "pw"


class System:
    """A generated scs.conf + confserv.conf, and the running ``scs`` process."""

    def __init__(self, tmp: Path, extra_sections: str = "") -> None:
        self.tmp = tmp
        p = [free_port() for _ in range(7)]
        self.ports = {"confserv": p[0], "backup": p[2], "proxy": p[4]}
        self.conf = tmp / "confserv.conf"
        common = (
            f"management-secret = {SECRET}\nserver = db\npair = confserv\n"
            "lease-ttl = 2\nlease-renew = 0.4\nprotocol = addp\naddp-timeout = 0.5\n"
        )
        self.conf.write_text(
            f"[confserv]\nport = {p[0]}\nmanagement-port = {p[1]}\n{common}"
            f"[backup]\nport = {p[2]}\nmanagement-port = {p[3]}\n{common}"
            f"[proxy]\nmode = proxy\nport = {p[4]}\nmanagement-port = {p[5]}\n"
            f"management-secret = {SECRET}\nmaster = 127.0.0.1:{p[1]},127.0.0.1:{p[3]}\n"
            "[log]\nverbose = all\n[db]\ndbengine = sqlite\ndbname = cfg.sqlite\n"
        )
        confserv = BIN / "confserv"

        def server(section: str, port: int, mport: int, peer: str | None) -> str:
            link = f"server = {peer}\n" if peer else "type = proxy\n"
            return (
                f"[{section}]\nhost = 127.0.0.1\nport = {port}\n{link}"
                f"management-port = {mport}\nmanagement-secret = {SECRET}\n"
                f"command = {confserv} -s {section} -c {self.conf}\nworking-directory = {tmp}\n"
                "protocol = addp\naddp-timeout = 0.5\naddp-remote-timeout = 0.5\n"
                "failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n"
            )

        self.scs_conf = tmp / "scs.conf"
        self.scs_conf.write_text(
            f"[scs]\ncontrol-port = {p[6]}\ncontrol-secret = {SECRET}\n"
            + server("confserv", p[0], p[1], "backup")
            + server("backup", p[2], p[3], "confserv")
            + server("proxy", p[4], p[5], None)
            + extra_sections
        )
        self.settings = load_scs_settings(self.scs_conf)
        env = {**os.environ, "CFG_PASSWORD": PASSWORD}
        subprocess.run(
            [
                str(BIN / "cfgctl"),
                "init",
                "-s",
                "confserv",
                "-c",
                str(self.conf),
                "--backup-section",
                "backup",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.logfile = tmp / "scs.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "scs"), "-f", str(self.scs_conf)], stdout=out, stderr=out
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.logfile.read_text()

    def logged(self, event_id: int) -> int:
        return sum(f" {event_id:05d} " in line for line in self.log().splitlines())

    async def status(self) -> dict[str, dict[str, Any]]:
        from confserv.client import open_management

        assert self.settings.control_port is not None
        async with open_management("127.0.0.1", self.settings.control_port, SECRET) as m:
            answer = await m.session.request("status")
        return {row["section"]: row for row in answer["servers"]}

    async def control(self, op: str, **args: Any) -> dict[str, Any]:
        from confserv.client import open_management

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
                except (OSError, RequestError, ConnectionLostError):
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


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    sys_ = System(tmp_path)
    sys_.start()
    try:
        yield sys_
    finally:
        sys_.stop()
        leftovers = subprocess.run(
            ["pgrep", "-f", str(sys_.conf)], capture_output=True, text=True
        ).stdout.split()
        assert leftovers == [], f"processes left behind: {leftovers}"


class Writer:
    """A client writing throughout, through the resilient client library."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self.stop = trio.Event()

    async def run(self) -> None:
        servers = [self.system.address("confserv"), self.system.address("backup")]
        async with open_resilient_client(
            servers, app="w", user="default", password=PASSWORD, reconnect_timeout=0.02
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
                    pass  # refused outright: not done, not acknowledged
                await trio.sleep(0.01)

    async def until(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.acked) < count:
                await trio.sleep(0.01)

    async def check(self, server: tuple[str, int]) -> None:
        async with open_client([server], app="chk", user="default", password=PASSWORD) as c:
            names = {d["name"] for d in await c.read("DN")}
        assert set(self.acked) <= names, "an acknowledged write was lost"


async def test_sigkill_of_the_primary_heals_the_pair(system: System) -> None:
    rows = await system.wait(healthy)
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    writer = Writer(system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(20)
        os.kill(rows[old]["pid"], signal.SIGKILL)
        rows = await system.wait(lambda r: r[new]["role"] == "primary")
        await writer.until(len(writer.acked) + 20)
        writer.stop.set()
    # The story: died, force-promoted, promoted, proxy redirected, restarted, healthy.
    rows = await system.wait(lambda r: healthy(r) and r[old]["role"] == "backup")
    for event_id in (40301, 40304, 40306, 40308, 40101, 40309):
        assert system.logged(event_id) >= 1, f"event {event_id} missing:\n{system.log()}"
    assert rows[new]["epoch"] >= 2
    await writer.check(system.address(new))


async def test_a_short_stall_is_ignored_and_a_long_one_fails_over(system: System) -> None:
    rows = await system.wait(healthy)
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    pid = rows[old]["pid"]
    # A stall shorter than the detection bound (addp-timeout 0.5 s): no failover.
    os.kill(pid, signal.SIGSTOP)
    await trio.sleep(0.2)  # the fault itself: the stall's length is what is tested
    os.kill(pid, signal.SIGCONT)
    await trio.sleep(1.5)  # ... and nothing must follow within the detection bound
    assert system.logged(40302) == 0
    assert (await system.status())[old]["role"] == "primary"
    # A long stall: detected by ADDP, promoted without force once the lease expired.
    writer = Writer(system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(10)
        os.kill(pid, signal.SIGSTOP)
        await system.wait(lambda r: r[new]["role"] == "primary")
        await writer.until(len(writer.acked) + 10)
        writer.stop.set()
    assert system.logged(40302) >= 1
    assert system.logged(40305) >= 1
    assert system.logged(40304) == 0  # never forced: no proof of death
    os.kill(pid, signal.SIGCONT)
    await system.wait(lambda r: r[old]["role"] == "backup")
    await writer.check(system.address(new))


async def test_switchover_and_pause(system: System) -> None:
    rows = await system.wait(healthy)
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    writer = Writer(system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(10)
        answer = await system.control("switchover", pair="confserv")
        assert f"'{new}' is primary" in answer["result"]
        await writer.until(len(writer.acked) + 10)
        writer.stop.set()
    await writer.check(system.address(new))
    assert writer.unknown == []
    # Paused: the primary's death triggers nothing.
    await system.control("pause", pair="confserv")
    rows = await system.wait(lambda r: r[new]["role"] == "primary" and r[new]["paused"])
    os.kill(rows[new]["pid"], signal.SIGKILL)
    await system.wait(lambda r: r[new]["state"] == "down")
    await trio.sleep(1.0)  # nothing may happen while paused
    rows = await system.status()
    assert rows[new]["state"] == "down"
    assert rows[old]["role"] == "backup"
    assert system.logged(40301) == 0
    await system.control("resume", pair="confserv")
    await system.wait(healthy)


async def test_a_crash_loop_backs_off_and_raises_an_alarm(tmp_path: Path) -> None:
    flappy = (
        f"[flappy]\ntype = proxy\nport = {free_port()}\nmanagement-port = {free_port()}\n"
        f"management-secret = x\ncommand = {sys.executable} -c 'raise SystemExit(3)'\n"
        f"working-directory = {tmp_path}\nrestart-backoff = 0.05\nrestart-backoff-max = 1\n"
        "restart-limit = 3\nrestart-window = 60\n"
    )
    system = System(tmp_path, flappy)
    system.start()
    try:
        with trio.fail_after(30):
            while system.logged(40104) == 0:
                await trio.sleep(0.05)
        assert system.logged(40103) >= 3
        rows = await system.status()
        assert rows["flappy"]["restarts"] >= 3
    finally:
        system.stop()


async def test_a_restarted_supervisor_adopts_running_servers(system: System) -> None:
    rows = await system.wait(healthy)
    pids = {name: row["pid"] for name, row in rows.items()}
    assert system.proc is not None
    system.proc.kill()  # SIGKILL the supervisor: its servers live on (own sessions)
    system.proc.wait()
    system.start()  # the log file starts afresh for the new supervisor
    rows = await system.wait(healthy)
    assert {name: row["pid"] for name, row in rows.items()} == pids  # adopted, not restarted
    assert system.logged(40108) == 3
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    os.kill(pids[old], signal.SIGKILL)  # an adopted process's death is still seen at once
    await system.wait(lambda r: r[new]["role"] == "primary")
    assert system.logged(40304) == 1
