"""The agent's processes: real processes under real shims, on this host.

What the issue asks of the agent's process handling: start with a command line,
working directory and environment; stop (terminate, then kill); signal; list;
every exit reported with its code or signal; processes keep running when the
agent goes away, an agent started again finds them and the exits it missed,
and never starts a second copy.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import trio

from lca.processes import AlreadyRunningError, NotWatchedError, Processes, StartError
from lca.records import read_records

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


async def test_a_process_starts_with_its_directory_and_environment(tmp_path: Path) -> None:
    procs = Processes(tmp_path / "state")
    script = "import os; print(os.getcwd(), os.environ['WHO']); raise SystemExit(3)"
    pid = await procs.start(
        "a",
        [sys.executable, "-c", script],
        tmp_path / "work",
        tmp_path / "a.log",
        env={**os.environ, "WHO": "agent"},
    )
    with trio.fail_after(20):
        how = await procs.wait("a", pid)
    assert how == "exit code 3"
    assert (tmp_path / "a.log").read_text() == f"{tmp_path / 'work'} agent\n"
    procs.delivered("a", pid)
    assert read_records(tmp_path / "state") == ([], [])


async def test_a_kill_is_reported_with_its_signal_and_a_second_copy_is_refused(
    tmp_path: Path,
) -> None:
    procs = Processes(tmp_path / "state")
    pid = await procs.start("a", SLEEP, tmp_path, tmp_path / "a.log")
    with pytest.raises(AlreadyRunningError, match=f"pid {pid}"):
        await procs.start("a", SLEEP, tmp_path, tmp_path / "a.log")
    assert procs.running() == {"a": pid}
    procs.kill("a", pid)
    with trio.fail_after(20):
        assert await procs.wait("a", pid) == "killed by SIGKILL"
    assert procs.running() == {}
    with pytest.raises(NotWatchedError):
        procs.signal("a", pid, signal.SIGTERM)


async def test_terminate_goes_to_kill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    procs = Processes(tmp_path / "state")
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid = await procs.start("a", [sys.executable, "-c", stubborn], tmp_path, tmp_path / "a.log")
    await trio.sleep(0.3)  # let it install its handler (it only makes the test meaningful)
    with trio.fail_after(20):
        await procs.terminate("a", pid, timeout=0.5)
        assert await procs.wait("a", pid) == "killed by SIGKILL"


async def test_a_command_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    procs = Processes(tmp_path / "state")
    with trio.fail_after(20), pytest.raises(StartError, match="could not start: no-such-cmd"):
        await procs.start("a", ["no-such-cmd"], tmp_path, tmp_path / "a.log")


async def test_a_restarted_agent_finds_what_runs_and_the_exits_it_missed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Processes(state)
    running = await first.start("runs", SLEEP, tmp_path, tmp_path / "r.log")
    dies = await first.start("dies", SLEEP, tmp_path, tmp_path / "d.log")
    first.close()  # the agent goes away; its processes do not
    del first
    assert alive(running)
    os.kill(dies, signal.SIGKILL)  # dies while no agent watches
    with trio.fail_after(20):
        while read_records(state)[0] and not list(state.glob(f"dies.{dies}.exit")):
            await trio.sleep(0.01)
    second = Processes(state)
    found, ended, problems = second.recover()
    assert found == {"runs": running}
    assert ended == {"dies": (dies, "killed by SIGKILL")}
    assert problems == []
    with pytest.raises(AlreadyRunningError):
        await second.start("runs", SLEEP, tmp_path, tmp_path / "r.log")
    assert await second.wait("dies", dies) == "killed by SIGKILL"
    second.delivered("dies", dies)
    second.kill("runs", running)
    with trio.fail_after(20):
        assert await second.wait("runs", running) == "killed by SIGKILL"
    assert not alive(running)


async def test_a_reused_pid_is_never_taken_for_the_recorded_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # A record whose pid is a live process (this test) that started at another time.
    fields = f'"shim_pid": 1, "shim_started": 1, "pid": {os.getpid()}, "started": 1'
    (state / "x.json").write_text(f'{{"name": "x", {fields}, "argv": []}}')
    (state / "junk.json").write_text("not json")
    procs = Processes(state)
    found, ended, problems = procs.recover()
    assert found == {}
    assert ended == {"x": (os.getpid(), "exited while the agent was away (how: unknown)")}
    assert len(problems) == 1
    assert "junk.json: not a process record" in problems[0]
    procs.kill("x", os.getpid())  # an ended process: nothing is signalled (we live on)
    with pytest.raises(NotWatchedError, match="has ended"):
        procs.signal("x", os.getpid(), signal.SIGTERM)


async def test_a_refusal_right_before_the_spawn_starts_nothing(tmp_path: Path) -> None:
    """The supervisor's own host asks "may I still act?" right before the process is
    made: a start held up (by a SIGSTOP of the supervisor) past its lease is not done."""

    class NotNow(Exception):
        pass

    def refuse() -> None:
        raise NotNow

    processes = Processes(tmp_path / "state")
    with pytest.raises(NotNow):
        await processes.start("cs", SLEEP, tmp_path, tmp_path / "cs.log", before_spawn=refuse)
    assert processes.running() == {}
    assert not (tmp_path / "cs.log").exists()
    asked: list[str] = []
    pid = await processes.start(
        "cs", SLEEP, tmp_path, tmp_path / "cs.log", before_spawn=lambda: asked.append("ok")
    )
    assert asked == ["ok"]
    assert processes.running() == {"cs": pid}
    await processes.terminate("cs", pid, 5.0)
