"""The supervisor's process seam through a host's agent, against a real agent on
127.0.0.1: an exit reported by the agent is returned by ``wait``; a lost agent link
is not (wait goes on), and an exit that happened while the agent was away is learnt
when it is back; exits are acknowledged; a second copy is never started."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from scs.agent_launcher import AgentLauncher
from scs.launcher import LaunchError
from tests.lca.test_agent import SECRET, SLEEP, agent_link, start_agent


async def test_wait_returns_the_exit_the_agent_reports_and_acknowledges_it(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    port, _ = await start_agent(nursery, tmp_path / "state")
    launcher = AgentLauncher("127.0.0.1", port, SECRET, "host-a", epoch=lambda: 1)
    await nursery.start(launcher.run)
    pid = await launcher.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    with pytest.raises(LaunchError, match="already"):
        await launcher.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    watched = []
    launcher.kill("cs", pid)
    with trio.fail_after(20):
        how = await launcher.wait("cs", pid, watching=lambda: watched.append(pid))
    assert (how, watched) == ("killed by SIGKILL", [pid])
    async with agent_link(port) as a:
        with trio.fail_after(10):
            while (await a.ask("list", epoch=1))["exits"]:  # the ack is on its way
                await trio.sleep(0.01)


async def test_a_lost_agent_is_no_proof_and_the_missed_exit_comes_later(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    state = tmp_path / "state"
    port, scope = await start_agent(nursery, state)
    launcher = AgentLauncher("127.0.0.1", port, SECRET, "host-a")
    await nursery.start(launcher.run)
    pid = await launcher.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    ended: list[str] = []

    async def waiter() -> None:
        ended.append(await launcher.wait("cs", pid))

    nursery.start_soon(waiter)
    await trio.sleep(0.2)
    scope.cancel()  # the agent goes away: no proof of anything
    await trio.sleep(1.0)
    assert ended == []
    os.kill(pid, signal.SIGKILL)  # dies while no agent watches
    with trio.fail_after(20):
        while not (state / f"cs.{pid}.exit").exists():
            await trio.sleep(0.01)
    await trio.sleep(0.5)
    assert ended == []  # still no agent: still no proof
    await start_agent_on(nursery, state, port)
    with trio.fail_after(20):
        while not ended:
            await trio.sleep(0.01)
    assert ended == ["killed by SIGKILL"]


async def start_agent_on(nursery: trio.Nursery, state: Path, port: int) -> None:
    """An agent over ``state`` on the same ``port`` (the one before it has gone)."""
    from lca.agent import Agent

    async def run(task_status: trio.TaskStatus[int]) -> None:
        await Agent(state, SECRET, "host-a").run(port, task_status=task_status)

    with trio.fail_after(20):
        while True:
            try:
                await nursery.start(run)
                return
            except OSError:  # the port not free yet
                await trio.sleep(0.05)


async def test_the_agent_link_speaks_tls_with_client_certificates(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    from lca.agent import Agent
    from lca.config import load_agent_settings
    from tests.helpers.tls import make_tls_files

    files = make_tls_files(tmp_path / "certs")
    conf = tmp_path / "lca.conf"
    conf.write_text(
        f"[lca]\nagent-secret = {SECRET}\nhost-name = host-a\nencryption = true\n"
        f"tls-certificate = {files.certificate}\ntls-private-key = {files.private_key}\n"
        f"tls-ca = {files.ca}\ntls-client-certificates = required\n"
    )
    conf.chmod(0o600)
    settings = load_agent_settings(conf)

    async def run(task_status: trio.TaskStatus[int]) -> None:
        agent = Agent(tmp_path / "state", SECRET, "host-a")
        await agent.run(0, ssl_context=settings.ssl_context, task_status=task_status)

    port = await nursery.start(run)
    launcher = AgentLauncher("127.0.0.1", port, SECRET, "host-a", tls=files.client())
    await nursery.start(launcher.run)
    pid = await launcher.start("cs", SLEEP, tmp_path, tmp_path / "cs.log")
    launcher.kill("cs", pid)
    with trio.fail_after(20):
        assert await launcher.wait("cs", pid) == "killed by SIGKILL"
    # Without a client certificate the agent refuses it in the TLS handshake.
    plain = AgentLauncher(
        "127.0.0.1", port, SECRET, "host-a", tls=files.client(certificate=False), timeout=1.0
    )
    await nursery.start(plain.run)
    with pytest.raises(LaunchError, match="cannot be reached"):
        await plain.start("x", SLEEP, tmp_path, tmp_path / "x.log")
