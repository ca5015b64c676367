"""Signals to ``scs -f``: closing its terminal (SIGHUP) stops it as SIGTERM does.

Before, SIGHUP killed the supervisor at once and left its three servers
running, orphaned. Now each of SIGHUP, SIGTERM and SIGINT logs 40002 and, with
``on-stop = stop-servers`` (the default without ``[scs] database``), stops
every server; the ``system`` fixture then finds no process of it left.
"""

from __future__ import annotations

import signal

import pytest
import trio

from ..helpers.system import System, healthy


@pytest.mark.parametrize("signum", [signal.SIGHUP])  # SIGTERM and SIGINT: test_e2e
async def test_a_signal_stops_the_supervisor_and_its_servers(
    system: System, signum: signal.Signals
) -> None:
    rows = await system.wait(healthy, timeout=60)
    assert system.proc is not None
    system.proc.send_signal(signum)
    with trio.fail_after(60):
        while system.proc.poll() is None:
            await trio.sleep(0.05)
    assert system.proc.returncode == 0
    (line,) = [x for x in system.log().splitlines() if " 40002 " in x]
    assert f"stopping: {signum.name}; stopping its servers" in line
    for row in rows.values():
        assert not system.owns(int(row["pid"])), f"{row['section']} left running"
