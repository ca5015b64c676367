"""A short bounded run of the real-process fault injection (``make chaos`` runs 220).

On fixed seeds, so that CI is repeatable, and on the seeds of issue 17: SQLite
5009-5012 (5009 and 5012 once left a write unanswered for 30 s) and PostgreSQL
5003 (once not healthy after a database restart). Their schedules have changed
since (new fault kinds), so these runs do not replay those failures; each root
cause has its own regression test where it was fixed.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .checker import Fault, Request
from .real import MID_PROMOTION_BOUND, Record, _mid_promotion_bound, plan, run

#: Real fault-injection slices: make chaos and CI run them, not make test (its 5 minutes).
pytestmark = [pytest.mark.integration, pytest.mark.chaos_slice]


async def test_a_few_real_schedules_hold_every_invariant() -> None:
    summary = await run(schedules=4, seed=5009, engine="sqlite", deadline=time.monotonic() + 40)
    assert summary.schedules >= 1
    assert summary.violations == []
    assert summary.acked > 0
    assert sum(summary.faults.values()) >= summary.schedules  # every schedule injected something
    # every link went through its relay: the supervisor's, the backup's stream, the clients'
    for link in ("scs>confserv", "scs>backup", "scs>proxy", "client>confserv", "client>proxy"):
        assert summary.relayed[link] > 0, link
    assert summary.relayed["peer>confserv"] + summary.relayed["peer>backup"] > 0


async def test_a_real_schedule_on_postgresql_holds_every_invariant() -> None:
    summary = await run(schedules=1, seed=5003, engine="postgre", deadline=time.monotonic() + 30)
    assert summary.schedules == 1
    assert summary.violations == []
    assert summary.acked > 0
    assert summary.relayed["confserv>db"] + summary.relayed["backup>db"] > 0


def test_schedules_replay_from_their_seed_and_cover_every_fault_kind() -> None:
    assert plan(random.Random(5), "postgre") == plan(random.Random(5), "postgre")
    kinds = {p.kind for seed in range(300) for p in plan(random.Random(seed), "postgre")}
    assert kinds == {
        "kill",
        "kill-mid-promotion",
        "pause",
        "partition",
        "db-stall",
        "db-restart",
        "third-master",
        "duplicate-start",
        "scs-restart-mid-failover",
    }
    links = {
        p.what
        for seed in range(300)
        for p in plan(random.Random(seed), "postgre")
        if p.kind == "partition"
    }
    assert {"scs-primary", "peer-primary", "proxy-primary", "client-primary", "primary-db"} <= links
    sqlite = {p.kind for seed in range(300) for p in plan(random.Random(seed), "sqlite")}
    assert "db-restart" not in sqlite  # no server to restart for an embedded database


def test_a_kill_mid_promotion_failed_over_later_than_two_lease_ttls_is_a_violation() -> None:
    def record(failover_after: float) -> Record:
        writes = [
            Request("w", "write", 0.0, 0.1, "ok", serial=1, epoch=1),
            Request("w", "write", 1.0, 1.0 + failover_after, "ok", serial=2, epoch=3),
        ]
        return Record(writes, [Fault("kill-mid-promotion", "kill-mid-promotion", 1.0, 0.0)])

    assert _mid_promotion_bound(record(1.5)) == []
    (line,) = _mid_promotion_bound(record(MID_PROMOTION_BOUND + 0.5))
    assert "failed over in 4.50 s (bound 2 x lease-ttl = 4 s)" in line


async def test_a_long_run_is_cut_into_segments_each_on_a_fresh_system(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ``segment`` schedules get a fresh system; the last segment is shorter."""
    from tests.chaos import real

    calls: list[tuple[int, int]] = []

    async def segment(_summary: object, first: int, count: int, *_a: object, **_k: object) -> None:
        calls.append((first, count))

    monkeypatch.setattr(real, "_segment", segment)
    await real.run(schedules=250, seed=7000, engine="sqlite", deadline=time.monotonic() + 60)
    assert calls == [(7000, 100), (7100, 100), (7200, 50)]
    calls.clear()
    await real.run(5, 10, "sqlite", time.monotonic() + 60, segment=2)
    assert calls == [(10, 2), (12, 2), (14, 1)]


def _processes_under(path: Path) -> list[str]:
    """The command lines of live processes naming ``path`` (this run's files)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if str(path) in line:
            found.append(f"{proc.name}: {line}")
    return found


@pytest.mark.parametrize("when", ["starting", "between schedules"])
def test_a_sigterm_to_the_runner_stops_the_system_under_test(tmp_path: Path, when: str) -> None:
    """``timeout`` or a CI runner stopping ``python -m tests.chaos.real`` (SIGTERM to
    it alone) ends it as Ctrl-C does, whether its system is still starting or a
    schedule has run: scs and the servers it started are gone too, one line said."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the system's files, and so its argv
    runner = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.real", "--schedules", "3", "--seed", "5009"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any("confserv -s" in p for p in _processes_under(tmp_path)):
            assert runner.poll() is None, runner.communicate()[1]
            assert time.monotonic() < deadline, "the system did not start within 60 s"
            time.sleep(0.1)
        if when == "between schedules":
            assert runner.stdout is not None
            ready, _, _ = select.select([runner.stdout], [], [], 60)
            assert ready, "no schedule ended within 60 s"
            assert "seed 5009" in runner.stdout.readline()
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    assert err.strip().splitlines() == ["chaos: interrupted; the system under test is stopped"]
    assert _processes_under(tmp_path) == []
