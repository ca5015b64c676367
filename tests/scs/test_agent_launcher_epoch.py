"""The agent link and the supervisor epoch (issue 14), against a real agent on 127.0.0.1:
a newer supervisor's epoch makes the agent refuse an older one's commands, and the
deposed supervisor hears of it (``on_superseded``, with the newest epoch); a supervisor
that may not act sends nothing, not even the acknowledgement of an exit, which
stays owed to the active one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from scs.agent_launcher import AgentLauncher
from scs.launcher import NotActingError
from tests.lca.test_agent import SECRET, SLEEP, agent_link, start_agent


async def test_an_older_epoch_is_refused_and_the_sender_told_the_newest(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    port, _ = await start_agent(nursery, tmp_path / "state")
    told: list[int] = []
    old = AgentLauncher(
        "127.0.0.1", port, SECRET, "host-a", epoch=lambda: 1, on_superseded=told.append
    )
    new = AgentLauncher("127.0.0.1", port, SECRET, "host-a", epoch=lambda: 2)
    await nursery.start(old.run)
    await nursery.start(new.run)
    pid = await new.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    with pytest.raises(NotActingError, match="older than epoch 2"):
        await old.start("other", SLEEP, tmp_path, tmp_path / "other.log")
    assert told == [2]
    await old.terminate("cs", pid, 1.0)  # refused, quietly: nothing stopped
    os.kill(pid, 0)  # still runs
    await new.terminate("cs", pid, 5.0)
    with trio.fail_after(20):
        assert await new.wait("cs", pid) in ("exit code 0", "killed by SIGTERM")


async def test_a_supervisor_that_may_not_act_sends_nothing_not_even_an_ack(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    port, _ = await start_agent(nursery, tmp_path / "state")
    acting = [True]

    def epoch() -> int:
        if not acting[0]:
            raise NotActingError("standby")
        return 1

    launcher = AgentLauncher("127.0.0.1", port, SECRET, "host-a", epoch=epoch)
    await nursery.start(launcher.run)
    pid = await launcher.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    acting[0] = False
    with pytest.raises(NotActingError):
        await launcher.start("other", SLEEP, tmp_path, tmp_path / "other.log")
    with pytest.raises(NotActingError):
        launcher.kill("cs", pid)
    os.kill(pid, signal.SIGKILL)
    with trio.fail_after(20):
        assert await launcher.wait("cs", pid) == "killed by SIGKILL"
    await trio.sleep(0.3)  # an acknowledgement would have landed by now
    async with agent_link(port) as a:
        owed = (await a.ask("list", epoch=1))["exits"]
    assert [(e["name"], e["pid"]) for e in owed] == [("cs", pid)]
