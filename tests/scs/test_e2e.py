"""The whole system through ``scs -f`` on a generated file: real processes, real signals.

SQLite under the pair (the pair itself is tested on PostgreSQL too, in
tests/confserv). Waits are for conditions under deadlines; the log is read
for the failover story's event ids.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

from scs.history_file import HISTORY_NAME, read_history

from ..helpers.system import (
    BIN,
    System,
    Writer,
    healthy,
    primary_of,
    sigkill_primary_under_writes,
    stop_outside_a_transaction,
)

pytestmark = pytest.mark.integration


async def test_sigkill_of_the_primary_heals_the_pair(system: System) -> None:
    writer = Writer.for_system(system)
    old, new = await sigkill_primary_under_writes(system, writer)
    # The story: died, force-promoted, promoted, proxy redirected, restarted, healthy.
    rows = await system.wait(lambda r: healthy(r) and r[old]["role"] == "backup")
    for event_id in (40301, 40304, 40306, 40308, 40101, 40309):
        assert system.logged(event_id) >= 1, f"event {event_id} missing:\n{system.log()}"
    assert rows[new]["epoch"] >= 2
    # The writer resumed its session on the new primary with the old one's ticket: that
    # server never ran a password check (scrypt, 40-50 ms) for it (issue 16).
    status = await system.member_status(new)
    assert status is not None
    assert status["resumed"] >= 1
    assert status["password_checks"] == 0
    await writer.check(system.address(new))  # (a login with the password: one check)
    # The same story on disk, for another shell: scs history and scs events.
    path = system.settings.state_dir / HISTORY_NAME
    with trio.fail_after(10):
        while not (records := [r for r in read_history(path) if r.outcome == "healthy"]):
            await trio.sleep(0.05)
    done = await _scs("history", "-f", str(system.scs_conf), "--json")
    [record] = [json.loads(line) for line in done.splitlines()]
    assert record == records[0].to_json()
    assert (record["old_primary"], record["new_primary"], record["seen"]) == (old, new, "died")
    assert (record["cause"], record["epoch"]) == ("proof of death", rows[new]["epoch"])
    assert record["fault_at"] <= record["promoted_at"] <= record["healthy_at"]
    assert record["old_primary_back_at"] is not None
    assert record["proxies_redirected"] == 1
    done = await _scs("events", str(system.scs_conf), "-n", "1000")
    story = [line for line in done.splitlines() if " 40309 " in line]
    assert story, done[-2000:]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} Std 40309 ", story[0]), story


async def _scs(*args: str) -> str:
    """``scs ARGS``' output; it must exit 0."""
    done = await trio.run_process(
        [str(BIN / "scs"), *args], capture_stdout=True, capture_stderr=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_a_short_stall_is_ignored_and_a_long_one_fails_over(system: System) -> None:
    rows = await system.wait(healthy)
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    pid = rows[old]["pid"]
    # A stall shorter than the detection bound (addp-timeout 1 s: silent for 2 s): no failover.
    os.kill(pid, signal.SIGSTOP)
    await trio.sleep(0.2)  # the fault itself: the stall's length is what is tested
    os.kill(pid, signal.SIGCONT)
    await trio.sleep(1.5)  # ... and nothing must follow within the detection bound
    assert system.logged(40302) == 0
    assert (await system.status())[old]["role"] == "primary"
    # A long stall: detected by ADDP, promoted without force once the lease expired.
    writer = Writer.for_system(system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.until(10)
        await stop_outside_a_transaction(pid, system.tmp / "cfg.sqlite")
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
    writer = Writer.for_system(system)
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
    # Held bound until the system has chosen its own ports: no two sections get one.
    held = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    port, mport = (h.getsockname()[1] for h in held)
    flappy = (
        f"[flappy]\ntype = proxy\nport = {port}\nmanagement-port = {mport}\n"
        f"management-secret = x\ncommand = {sys.executable} -c 'raise SystemExit(3)'\n"
        f"working-directory = {tmp_path}\nrestart-backoff = 0.05\nrestart-backoff-max = 1\n"
        "restart-limit = 3\nrestart-window = 60\n"
    )
    system = System(tmp_path, flappy)
    for h in held:
        h.close()
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
    with trio.fail_after(10):  # the second pair member is adopted once its peer answered
        while system.logged(40108) < 3:
            await trio.sleep(0.05)
    assert system.logged(40108) == 3
    old = primary_of(rows)
    new = "backup" if old == "confserv" else "confserv"
    os.kill(pids[old], signal.SIGKILL)  # an adopted process's death is still seen at once
    await system.wait(lambda r: r[new]["role"] == "primary")
    assert system.logged(40304) == 1
