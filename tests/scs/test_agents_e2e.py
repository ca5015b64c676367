"""``scs -f`` supervising a pair through a real host agent (``lca``), on 127.0.0.1.

The pair's section says ``host = hostA``, a host section whose agent runs
here as its own process; the proxy stays on the supervisor's own host. What
it shows: the agent starts the servers, an exit it reports is proof of death
(a forced failover), its loss is not (the servers keep running, nothing is
started twice, and a primary killed meanwhile is failed over by its lease),
and when it comes back the supervisor learns the exit it missed and the old
primary rejoins as backup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from tests.helpers.agents import AgentProcess
from tests.helpers.system import System, healthy, primary_of


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_pair_through_an_agent(tmp_path: Path, agent: AgentProcess) -> None:
    system = System(
        tmp_path,
        extra_sections=agent.section(),
        hosts={"confserv": "hostA", "backup": "hostA"},
    )
    system.start()
    try:
        rows = await system.wait(healthy, timeout=40)
        assert system.logged(40601) >= 1, system.log_tail()
        pids = {s: int(rows[s]["pid"]) for s in ("confserv", "backup")}
        # The agent started them, under its shims: not children of the supervisor.
        for pid in pids.values():
            stat = Path(f"/proc/{pid}/stat").read_text()  # noqa: ASYNC240 (a /proc read)
            assert int(stat.rsplit(")", 1)[1].split()[1]) != system.pid
        started = system.logged(40101)

        # 1. A kill the agent reports: proof of death, a forced failover.
        old = primary_of(rows)
        os.kill(pids[old], signal.SIGKILL)
        rows = await system.wait(
            lambda r: healthy(r) and primary_of(r) != old and r[old]["role"] == "backup",
            timeout=30,
        )
        assert system.logged(40301) == 1, system.log_tail()
        assert system.logged(40304) == 1, system.log_tail()
        started += 1  # the old primary, restarted as backup
        pids = {s: int(rows[s]["pid"]) for s in ("confserv", "backup")}

        # 2. The agent killed: not proof of anything; the servers go on, nothing restarts.
        agent.kill()
        with trio.fail_after(20):
            while system.logged(40602) < 1:
                await trio.sleep(0.05)
        assert all(_alive(pid) for pid in pids.values())
        agent.start()
        with trio.fail_after(20):
            while system.logged(40601) < 2:
                await trio.sleep(0.05)
        assert "2 of its processes running" in next(
            line for line in reversed(system.log().splitlines()) if " 40601 " in line
        )
        rows = await system.wait(healthy, timeout=10)
        assert system.logged(40101) == started, system.log_tail()
        assert {s: int(rows[s]["pid"]) for s in pids} == pids

        # 3. The agent down and then the primary killed: no proof (the exit is not
        # seen), so the backup takes over by the lease; the agent back, its owed
        # exit is learnt and the old primary restarted, as backup, once.
        agent.kill()
        with trio.fail_after(20):
            while system.logged(40602) < 2:
                await trio.sleep(0.05)
        old = primary_of(rows)
        os.kill(pids[old], signal.SIGKILL)
        with trio.fail_after(30):
            while system.logged(40306) < 2:  # promoted, once the lease had expired
                await trio.sleep(0.05)
        assert system.logged(40301) == 1, "no exit was seen: it must not read as a death"
        assert system.logged(40302) >= 1, system.log_tail()
        assert system.logged(40305) >= 1, system.log_tail()
        agent.start()
        rows = await system.wait(
            lambda r: healthy(r) and r[old]["role"] == "backup" and int(r[old]["pid"]) != pids[old],
            timeout=40,
        )
        assert system.logged(40101) == started + 1, system.log_tail()
        assert any(f"pid {pids[old]} exited" in line for line in system.log().splitlines()), (
            system.log_tail()
        )
    finally:
        system.stop()
