"""The agent's port end to end, on 127.0.0.1 with real processes: authentication, start,
signal, stop, list, the exit pushed until acknowledged, the supervisor-epoch fence, and
an agent started again over the same state directory."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from addp import AddpOptions
from addp.auth import ClientHandshake, HandshakeError, Purpose
from addp.transport import Link, connect
from lca.agent import Agent

SECRET = "agent-secret-of-host-a"
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class AgentClient:
    """A supervisor's side of an agent link, in the test's words."""

    def __init__(self, link: Link, hello: dict[str, Any]) -> None:
        self.link, self.hello = link, hello
        self._ids = 1
        self.pushes: list[dict[str, Any]] = []

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self._ids += 1
        await self.link.send({"op": op, "id": self._ids, **args})
        while True:
            msg: dict[str, Any] = await self.link.receive()
            if "push" in msg:
                self.pushes.append(msg)
                continue
            assert msg["re"] == self._ids
            return msg

    async def start(self, name: str, where: Path, epoch: int = 1, **args: Any) -> dict[str, Any]:
        """``start`` of a sleeper called ``name`` in ``where``, its output in ``where/name.log``."""
        log = str(where / f"{name}.log")
        return await self.ask(
            "start", epoch=epoch, name=name, argv=SLEEP, cwd=str(where), log=log, **args
        )

    async def push(self) -> dict[str, Any]:
        if self.pushes:
            return self.pushes.pop(0)
        with trio.fail_after(20):
            msg: dict[str, Any] = await self.link.receive()
        return msg


@asynccontextmanager
async def agent_link(port: int, secret: str = SECRET) -> AsyncIterator[AgentClient]:
    async with connect("127.0.0.1", port, AddpOptions()) as link:
        client = ClientHandshake((Purpose.AGENT,), secret, "host-a")
        await link.send({"op": "auth", "id": 1, **client.challenge(await link.receive())})
        answer = await link.receive()
        if not answer["ok"]:
            raise HandshakeError(answer["message"])
        client.verify(answer)
        yield AgentClient(link, answer)


async def start_agent(nursery: trio.Nursery, state: Path) -> tuple[int, trio.CancelScope]:
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[int]) -> None:
        with scope:
            await Agent(state, SECRET, "host-a").run(0, task_status=task_status)

    return await nursery.start(run), scope


async def test_a_supervisor_starts_signals_and_hears_of_the_exit(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    port, _ = await start_agent(nursery, tmp_path / "state")
    async with agent_link(port) as a:
        assert a.hello["running"] == {}
        started = await a.start("cs", tmp_path, epoch=1)
        pid = started["pid"]
        twice = await a.start("cs", tmp_path, epoch=1)
        assert (twice["ok"], twice["code"], twice["pid"]) == (False, "already-running", pid)
        assert (await a.ask("list", epoch=1))["running"] == {"cs": pid}
        assert (await a.ask("signal", epoch=1, name="cs", pid=pid, signal="SIGKILL"))["ok"]
        assert await a.push() == {
            "push": "exit",
            "name": "cs",
            "pid": pid,
            "how": "killed by SIGKILL",
        }
        assert (await a.ask("list", epoch=1))["exits"] == [
            {"name": "cs", "pid": pid, "how": "killed by SIGKILL"}
        ]
        assert (await a.ask("ack", epoch=1, name="cs", pid=pid))["ok"]
        assert (await a.ask("list", epoch=1))["exits"] == []


async def test_a_wrong_secret_and_an_older_supervisor_are_refused(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    port, _ = await start_agent(nursery, tmp_path / "state")
    with pytest.raises(HandshakeError, match="wrong proof: the client's agent-secret"):
        async with agent_link(port, secret="guess"):
            pass
    async with agent_link(port) as a:
        assert (await a.ask("list", epoch=5))["epoch"] == 5
        old = await a.start("x", tmp_path, epoch=4)
        assert (old["ok"], old["code"]) == (False, "stale-supervisor")
        assert "epoch 4 is older than epoch 5" in old["message"]
        bad = await a.ask("start", epoch=5, name="../x", argv=SLEEP, cwd="/", log="/l")
        assert (bad["ok"], bad["code"]) == (False, "bad-request")
        assert (await a.ask("list", epoch=5))["running"] == {}


async def test_an_agent_started_again_finds_its_processes_exits_and_epoch(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    state = tmp_path / "state"
    port, scope = await start_agent(nursery, state)
    async with agent_link(port) as a:
        runs = (await a.start("runs", tmp_path, epoch=3))["pid"]
        dies = (await a.start("dies", tmp_path, epoch=3))["pid"]
    scope.cancel()  # the agent goes away; its processes do not
    os.kill(dies, signal.SIGKILL)
    with trio.fail_after(20):
        while not (state / f"dies.{dies}.exit").exists():
            await trio.sleep(0.01)
    port, _ = await start_agent(nursery, state)
    async with agent_link(port) as a:
        assert a.hello["running"] == {"runs": runs}
        assert a.hello["epoch"] == 3
        assert await a.push() == {
            "push": "exit",
            "name": "dies",
            "pid": dies,
            "how": "killed by SIGKILL",
        }
        stale = await a.ask("list", epoch=2)
        assert stale["code"] == "stale-supervisor"
        assert (await a.ask("stop", epoch=3, name="runs", pid=runs, timeout=5))["ok"]
        assert await a.push() == {
            "push": "exit",
            "name": "runs",
            "pid": runs,
            "how": "killed by SIGTERM",
        }
