"""The pair as real processes: SIGKILL and SIGSTOP of the primary, on SQLite and PostgreSQL.

A client writes continuously through the resilient client library; the test
switches the backup through the management port as an operator (or the
supervisor) would, then checks that every acknowledged write is there, that
the old primary comes back as backup, and that a paused primary, resumed,
cannot write.
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

from confserv.client.session import open_client, open_management
from confserv.config.settings import DatabaseSettings
from confserv.wire.errors import ConnectionLostError, PromotionRefusedError, RequestError

from ..helpers.system import Writer, cfgctl_init, stop_outside_a_transaction
from .test_cli import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
SECRET = "pair-secret"
PASSWORD = "pair-pw"
TTL = 2.0


def db_section(db: DatabaseSettings) -> str:
    lines = [f"dbengine = {db.engine}", f"dbname = {db.dbname}"]
    if db.engine == "postgre":
        lines += [
            f"dbserver = {db.host}",
            f"port = {db.port}",
            f"username = {db.username}",
            f"password = {db.password}",
        ]
    return "\n".join(lines)


class Proc:
    """One confserv process of the pair."""

    def __init__(self, conf: Path, section: str, port: int, mport: int, log: Path) -> None:
        self.conf, self.section, self.port, self.mport, self.logfile = (
            conf,
            section,
            port,
            mport,
            log,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "confserv"), "-s", self.section, "-c", str(self.conf)],
                stdout=out,
                stderr=out,
            )

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def status(self) -> dict[str, Any] | None:
        try:
            with trio.fail_after(2):
                async with open_management("127.0.0.1", self.mport, SECRET, timeout=2) as m:
                    return await m.status()
        except (OSError, RequestError, trio.TooSlowError, ConnectionLostError) as exc:
            return {"error": str(exc)}
        except Exception as exc:  # a link ending mid-handshake, etc.
            return {"error": repr(exc)}

    async def wait_role(self, role: str, timeout: float = 30) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                status = await self.status()
                if status is not None and status.get("role") == role:
                    return status
                await trio.sleep(0.05)


@pytest.fixture
def pair(db_settings: DatabaseSettings, tmp_path: Path) -> Iterator[tuple[Proc, Proc, Proc]]:
    ports = [free_port() for _ in range(6)]
    conf = tmp_path / "pair.conf"
    common = f"""management-secret = {SECRET}
server = dbserver
lease-ttl = {TTL}
lease-renew = 0.4
protocol = addp
addp-timeout = 1
addp-remote-timeout = 1
"""
    conf.write_text(
        f"[confserv]\nport = {ports[0]}\nmanagement-port = {ports[1]}\n{common}"
        f"[backup]\nport = {ports[2]}\nmanagement-port = {ports[3]}\n{common}"
        f"[proxy]\nmode = proxy\nport = {ports[4]}\nmanagement-port = {ports[5]}\n"
        f"management-secret = {SECRET}\nmaster = 127.0.0.1:{ports[1]},127.0.0.1:{ports[3]}\n"
        f"[log]\nverbose = all\nall = stderr\n[dbserver]\n{db_section(db_settings)}\n"
    )
    conf.chmod(0o600)  # it holds secrets, as an operator's would (else one warning line)
    cfgctl_init(conf, PASSWORD)
    primary = Proc(conf, "confserv", ports[0], ports[1], tmp_path / "primary.log")
    backup = Proc(conf, "backup", ports[2], ports[3], tmp_path / "backup.log")
    proxy = Proc(conf, "proxy", ports[4], ports[5], tmp_path / "proxy.log")
    try:
        yield primary, backup, proxy
    finally:
        primary.stop()
        backup.stop()
        proxy.stop()


async def start_pair(primary: Proc, backup: Proc) -> None:
    """Start the primary, then the backup, each once it has its role."""
    primary.start()
    await primary.wait_role("primary")
    backup.start()
    await backup.wait_role("backup")


async def all_dn_names(server: tuple[str, int]) -> set[str]:
    async with open_client([server], app="check", user="default", password=PASSWORD) as c:
        return {d["name"] for d in await c.read("DN")}


async def test_sigkill_of_the_primary(pair: tuple[Proc, Proc, Proc]) -> None:
    primary, backup, proxy = pair
    await start_pair(primary, backup)
    proxy.start()
    await proxy.wait_role("proxy")
    writer = Writer([primary.address, backup.address], PASSWORD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        with trio.fail_after(20):
            while len(writer.acked) < 30:
                await trio.sleep(0.01)
        primary.signal(signal.SIGKILL)
        primary.proc.wait()  # type: ignore[union-attr]
        # We saw the process exit: proof of death, so force at once.
        async with open_management("127.0.0.1", backup.mport, SECRET) as m:
            answer = await m.switch_to_primary(force=True)
        assert answer["role"] == "primary"
        assert answer["epoch"] == 2
        acked_before = len(writer.acked)
        with trio.fail_after(20):
            while len(writer.acked) < acked_before + 30:
                await trio.sleep(0.01)
        writer.stop.set()
    names = await all_dn_names(backup.address)
    assert set(writer.acked) <= names, "an acknowledged write was lost"
    assert len(writer.unknown) <= 2
    # The proxy followed the new primary and serves the new data.
    with trio.fail_after(20):
        while (await proxy.status() or {}).get("serial") != (await backup.status() or {}).get(
            "serial"
        ):
            await trio.sleep(0.05)
    assert set(writer.acked) <= await all_dn_names(proxy.address)
    # The old primary, restarted, comes back as backup and catches up.
    primary.start()
    status = await primary.wait_role("backup")
    assert status["epoch"] <= 2
    with trio.fail_after(20):
        while (await primary.status() or {}).get("serial") != (await backup.status() or {}).get(
            "serial"
        ):
            await trio.sleep(0.05)


async def test_sigstop_of_the_primary(
    pair: tuple[Proc, Proc, Proc], db_settings: DatabaseSettings
) -> None:
    primary, backup, _proxy = pair
    await start_pair(primary, backup)
    writer = Writer([primary.address, backup.address], PASSWORD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        with trio.fail_after(20):
            while len(writer.acked) < 30:
                await trio.sleep(0.01)
        assert primary.proc is not None
        sqlite_file = db_settings.dbname if db_settings.engine == "sqlite" else None
        await stop_outside_a_transaction(primary.proc.pid, sqlite_file)
        stopped = trio.current_time()
        # No proof of death: promotion is refused until the lease has expired.
        async with open_management("127.0.0.1", backup.mport, SECRET) as m:
            refusals = 0
            with trio.fail_after(20):
                while True:
                    try:
                        answer = await m.switch_to_primary()
                        break
                    except PromotionRefusedError:
                        refusals += 1
                        await trio.sleep(0.05)
        promoted_after = trio.current_time() - stopped
        assert refusals > 0
        assert promoted_after >= TTL - 0.5  # the lease (renewed <= 0.4 s before the stop) ran out
        assert answer["epoch"] == 2
        acked_before = len(writer.acked)
        with trio.fail_after(20):
            while len(writer.acked) < acked_before + 20:
                await trio.sleep(0.01)
        writer.stop.set()
    # The paused primary, resumed, cannot write: its renewal is fenced and it joins as backup.
    primary.signal(signal.SIGCONT)
    await primary.wait_role("backup")
    names = await all_dn_names(backup.address)
    assert set(writer.acked) <= names, "an acknowledged write was lost"
    log = primary.logfile.read_text()
    assert "20161" in log or "20162" in log
