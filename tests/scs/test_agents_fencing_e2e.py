"""Through a host agent: a supervisor restarted while the SQLite primary is stopped inside
a transaction fences it (the multi-host form of tests/scs/test_fencing_e2e.py).

The pair runs on "hostA", whose ``lca`` is a process of its own on 127.0.0.1. The new
supervisor learns the stopped primary's process from the agent (it never answers), the
backup's promotion hangs on SQLite's lock, and the agent kills the process on the
supervisor's word. A fault-injection slice (``chaos_slice``: make chaos and CI), not make
test: it takes about 15 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.helpers.agents import AgentProcess
from tests.helpers.system import System, Writer, healthy, primary_of, stop_inside_a_transaction

pytestmark = [pytest.mark.integration, pytest.mark.chaos_slice]


async def test_a_restarted_supervisor_fences_a_stopped_primary_through_its_agent(
    tmp_path: Path, agent: AgentProcess
) -> None:
    system = System(
        tmp_path, extra_sections=agent.section(), hosts={"confserv": "hostA", "backup": "hostA"}
    )
    system.start()
    try:
        rows = await system.wait(healthy, timeout=40)
        old = primary_of(rows)
        new = "backup" if old == "confserv" else "confserv"
        pid = int(rows[old]["pid"])
        assert system.proc is not None
        system.proc.kill()  # the agent keeps the servers running
        system.proc.wait()
        writer = Writer.for_system(system)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            await writer.until(10)
            stopped = await stop_inside_a_transaction(pid, system.tmp / "cfg.sqlite")
            system.start()
            await system.wait(lambda r: r[new]["role"] == "primary", timeout=30)
            took = trio.current_time() - stopped
            await writer.until(len(writer.acked) + 10)
            writer.stop.set()
        print(f"failed over {took:.2f} s after the stop")
        lines = system.log().splitlines()
        assert any(" 40108 " in line and f"pid {pid}" in line for line in lines), system.log()
        assert system.logged(40312) == 1, system.log()
        assert took <= 10.0, f"failed over in {took:.2f} s:\n{system.log()}"
        await system.wait(lambda r: healthy(r) and r[old]["role"] == "backup", timeout=30)
        await writer.check(system.address(new))
    finally:
        system.stop()
