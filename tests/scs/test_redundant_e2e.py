"""Two ``scs -f`` for one installation, on loopback: one active, one standby (issue 14).

Both read the same ``scs.conf`` (copied: one supervisor per file on a host)
with ``[scs] database`` naming the pair's own database; each has its own
``--name`` and control port. Real processes, real kills; every wait is for a
condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from confserv.client.session import open_management
from confserv.wire.errors import StaleSupervisorError

from ..helpers.system import (
    BIN,
    SECRET,
    Supervisor,
    System,
    Writer,
    free_port,
    healthy,
    primary_of,
)

TTL = 2.0
OWN = (
    "database = scsdb\n"
    f"supervisor-lease-ttl = {TTL:g}\nsupervisor-lease-renew = 0.5\nsupervisor-lease-retry = 0.25\n"
)
DB = "[scsdb]\ndbengine = sqlite\ndbname = cfg.sqlite\n"


class Pair:
    """The installation under supervisor ``a`` (System's own) and a second, ``b``."""

    def __init__(self, tmp: Path) -> None:
        self.system = System(tmp, extra_sections=DB, own_lines=OWN)
        self.system.name = "scs-a"
        text = self.system.scs_conf.read_text()
        port = free_port()
        conf_b = tmp / "scs-b.conf"
        conf_b.write_text(re.sub(r"control-port = \d+", f"control-port = {port}", text, count=1))
        conf_b.chmod(0o600)
        self.b = Supervisor(conf_b, port, tmp / "scs-b.log", name="scs-b")

    def stop(self) -> list[str]:
        """Stop both supervisors (they leave the servers running), then every server
        process of the installation; the pids that were left."""
        self.b.stop()
        Supervisor.stop(self.system)
        left = subprocess.run(
            ["pgrep", "-f", str(self.system.conf)], capture_output=True, text=True
        ).stdout.split()
        for pid in left:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        return left


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    p = Pair(tmp_path)
    try:
        yield p
    finally:
        left = p.stop()
    # on-stop = leave-running (the default with a database): the servers outlived both
    assert left, "the servers were left running by the supervisors"


async def described(sup: Supervisor) -> dict[str, Any]:
    answer = await sup.control("status")
    info: dict[str, Any] = answer["supervisor"]
    return info


async def wait_mode(sup: Supervisor, mode: str, timeout: float = 20.0) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            try:
                info = await described(sup)
                # a standby before its first read of the lease knows no active one yet
                if info["mode"] == mode and (mode != "standby" or info["active"]):
                    return info
            except (OSError, Exception):  # not listening yet
                pass
            await trio.sleep(0.05)


def pids(rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {name: int(row["pid"]) for name, row in rows.items() if row.get("pid")}


async def test_one_active_one_standby_and_a_takeover_that_starts_nothing_twice(pair: Pair) -> None:
    system, b = pair.system, pair.b
    system.start()
    rows = await system.wait(healthy)
    info = await wait_mode(system, "active")
    assert info["epoch"] >= 1
    assert info["name"] == "scs-a"
    first = pids(rows)

    # A second process under the active one's name is refused, in one line.
    b.name = "scs-a"
    b.start()
    assert b.proc is not None
    with trio.fail_after(30):
        while b.proc.poll() is None:
            await trio.sleep(0.05)
    assert b.proc.returncode == 2
    assert "a supervisor named 'scs-a' already runs as" in b.log()
    assert "give this one another --name" in b.log()
    assert "Traceback" not in b.log()
    b.name = "scs-b"
    b.start()
    standby = await wait_mode(b, "standby")
    assert standby["active"]["name"] == "scs-a"
    assert standby["active"]["epoch"] == info["epoch"]
    with trio.fail_after(10):  # the active lists the standby too
        while "scs-b" not in [s["name"] for s in (await described(system))["supervisors"]]:
            await trio.sleep(0.1)
    # The standby shows what its links see and takes no command.
    assert {r["section"] for r in (await b.control("status"))["servers"]} == set(rows)
    with pytest.raises(Exception, match="standby"):
        await b.control("switchover", pair="confserv")
    with trio.fail_after(60):
        shown = await trio.run_process(
            [str(BIN / "scs"), "status", "-f", str(b.scs_conf), "--json"], capture_stdout=True
        )
    described_b = json.loads(shown.stdout)["supervisor"]
    assert described_b["mode"] == "standby"
    assert described_b["active"]["name"] == "scs-a"
    assert described_b["epoch"] is None

    killed_at = time.monotonic()
    os.kill(system.pid, signal.SIGKILL)
    took = await wait_mode(b, "active", timeout=TTL * 4)
    took_after = time.monotonic() - killed_at
    assert took["epoch"] == info["epoch"] + 1
    assert took_after < TTL + 1.5, f"standby active {took_after:.2f} s after the kill"
    after = await b.wait(healthy)
    # Adopted, never started again: every server is the same process.
    assert pids(after) == first
    assert b.logged(40101) == 0, b.log_tail()
    assert b.logged(40108) == len(first), b.log_tail()
    assert b.logged(40701) == 1
    assert b.logged(40702) == 1


async def test_the_standby_finishes_a_failover_when_the_active_dies_with_the_primary(
    pair: Pair,
) -> None:
    system, b = pair.system, pair.b
    system.start()
    rows = await system.wait(healthy)
    old = primary_of(rows)
    b.start()
    await wait_mode(b, "standby")
    old_epoch = int(rows[old]["epoch"])
    writer = Writer.for_system(system)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.until(5)
        fault = time.monotonic()
        os.kill(system.pid, signal.SIGKILL)
        os.kill(int(rows[old]["pid"]), signal.SIGKILL)
        # A primary at a newer epoch: the backup promoted, or the dead one restarted
        # (by the new active) that took the expired lease first; either is a failover.
        after = await b.wait(
            lambda r: any(r[n]["role"] == "primary" and r[n]["epoch"] > old_epoch for n in r),
            timeout=TTL * 4 + 15,
        )
        await writer.until(len(writer.acked) + 5)
        writer.stop.set()
    new = primary_of(after)
    first = writer.first_ack(fault, system.address(new), old_epoch + 1)
    assert first is not None
    outage = first.at - fault
    # The supervisor lease, then the no-primary grace (the backup alone), the promotion.
    assert outage < TTL + 4.5, f"first write {outage:.2f} s after the faults"
    assert b.logged(40701) == 1
    await writer.check(system.address(new))  # nothing acknowledged is lost
    await b.wait(healthy)  # the old primary back, as backup


async def test_a_planned_stop_hands_over_at_once_and_leaves_the_servers_running(
    pair: Pair,
) -> None:
    system, b = pair.system, pair.b
    system.start()
    rows = await system.wait(healthy)
    await wait_mode(system, "active")
    b.start()
    await wait_mode(b, "standby")
    stopped = time.monotonic()
    Supervisor.stop(system)  # SIGINT (System.stop kills the servers too, for cleanup)
    assert system.logged(40706) == 1, system.log_tail()
    await wait_mode(b, "active", timeout=TTL * 2)
    assert time.monotonic() - stopped < TTL, "a released lease is taken at once"
    assert pids(await b.wait(healthy)) == pids(rows)
    assert b.logged(40101) == 0


async def test_a_deposed_supervisors_epoch_is_refused_by_the_servers(pair: Pair) -> None:
    system, b = pair.system, pair.b
    system.start()
    rows = await system.wait(healthy)
    old_epoch = (await wait_mode(system, "active"))["epoch"]
    b.start()
    await wait_mode(b, "standby")
    os.kill(system.pid, signal.SIGKILL)
    await wait_mode(b, "active", timeout=TTL * 4)
    backup = next(n for n in ("confserv", "backup") if n != primary_of(rows))
    # A server started after the take-over has had no command of the new active yet:
    # it reads the supervisor lease's epoch from the database at start, and refuses the
    # deposed one (before that, a stale switch-to-primary would have promoted it).
    os.kill(int(rows[backup]["pid"]), signal.SIGKILL)
    await b.wait(lambda r: healthy(r) and r[backup]["pid"] != rows[backup]["pid"])
    async with open_management("127.0.0.1", system.management_ports[backup], SECRET) as m:
        with pytest.raises(StaleSupervisorError, match="older than epoch"):
            await m.switch_to_primary(supervisor_epoch=old_epoch)
        assert (await m.status())["role"] == "backup", "nothing was done for the deposed one"
    # The new active's role commands raise every server's fence as they land.
    await b.control("switchover", pair="confserv")
    await b.wait(lambda r: healthy(r) and r[backup]["role"] == "primary")
    async with open_management("127.0.0.1", system.management_ports[backup], SECRET) as m:
        with pytest.raises(StaleSupervisorError):
            await m.switch_to_backup(supervisor_epoch=old_epoch)
        status = await m.status()
    assert status["role"] == "primary", "nothing was done for the deposed supervisor"
    assert "admitted at supervisor epoch" in system.server_log(backup)
