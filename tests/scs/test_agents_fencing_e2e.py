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

from tests.helpers.agents import AgentProcess
from tests.helpers.system import System

from .test_fencing_e2e import fenced_after_a_supervisor_restart

pytestmark = [pytest.mark.integration, pytest.mark.chaos_slice]


async def test_a_restarted_supervisor_fences_a_stopped_primary_through_its_agent(
    tmp_path: Path, agent: AgentProcess
) -> None:
    system = System(
        tmp_path, extra_sections=agent.section(), hosts={"confserv": "hostA", "backup": "hostA"}
    )
    system.start()
    try:
        await fenced_after_a_supervisor_restart(system, bound=10.0)
    finally:
        system.stop()
