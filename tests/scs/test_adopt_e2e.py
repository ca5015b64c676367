"""A supervisor restarted while its primary is too busy to answer (issues 10 and 13).

The new supervisor cannot reach the stopped primary in time to adopt it by
its answer. Until issue 13 it then started a copy, which could not run beside
the real one and exited (an exit that had to be judged no proof of death).
Now its own host's records (the agent's code, in-process) say the server
runs: no copy is started at all; the real primary is adopted, and nothing is
force-promoted over it. Real processes; waits are for conditions.
"""

from __future__ import annotations

import os
import signal

import pytest
import trio

from ..helpers.system import System, healthy, primary_of, stop_outside_a_transaction

pytestmark = pytest.mark.integration


def started_lines(system: System, section: str) -> list[str]:
    return [x for x in system.log().splitlines() if f" 40101 Server '{section}' started" in x]


async def test_a_primary_too_busy_to_answer_is_adopted_not_started_twice(
    system: System,
) -> None:
    rows = await system.wait(healthy)
    old = primary_of(rows)
    pid = rows[old]["pid"]
    assert system.proc is not None
    system.proc.kill()  # the supervisor dies; its servers live on
    system.proc.wait()
    await stop_outside_a_transaction(pid, system.tmp / "cfg.sqlite")  # too busy to answer
    try:
        system.start()
        # Its adoption's status request times out; the records say it runs: adopted.
        with trio.fail_after(30):
            while f"Server '{old}' already running as pid {pid}" not in system.log():
                await trio.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)  # ... and the real primary answers again
    await system.wait(lambda r: healthy(r) and r[old]["pid"] == pid, timeout=60)
    assert started_lines(system, old) == [], "a second copy was started"
    # Its lease ran out while it was stopped, so the backup may have been promoted
    # (without force: 40305, the lease decides); never by force over it.
    assert system.logged(40304) == 0, f"force-promoted over a live primary:\n{system.log()}"
    assert system.logged(40301) == 0
    os.kill(pid, 0)  # alive all along
