"""One supervisor per scs.conf on a host: a second ``scs`` exits 2 naming the holder's pid.

Real ``scs`` processes; waits are for conditions under deadlines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from scs import lock

from ..helpers.system import BIN, System, free_port, healthy

pytestmark = pytest.mark.integration

SCS = str(BIN / "scs")


def test_the_lock_is_per_real_path_and_names_its_holder(tmp_path: Path) -> None:
    conf = tmp_path / "scs.conf"
    conf.write_text("")
    (tmp_path / "other").mkdir()
    link = tmp_path / "other" / "link.conf"
    link.symlink_to(conf)
    assert lock.lock_path(conf, tmp_path) == lock.lock_path(link, tmp_path)
    assert lock.lock_path(conf, tmp_path) != lock.lock_path(tmp_path / "x.conf", tmp_path)
    fd = lock.hold(conf, tmp_path)
    try:
        for name in (conf, link):
            with pytest.raises(lock.AlreadySupervised) as info:
                lock.hold(name, tmp_path)
            assert info.value.pid == os.getpid()
            assert f"already supervised by pid {os.getpid()}" in str(info.value)
    finally:
        os.close(fd)
    os.close(lock.hold(link, tmp_path))  # released with its descriptor


def test_the_lock_is_found_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "scs.conf"
    here = lock.lock_path(conf)
    assert here.parent == lock.LOCK_DIR
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert lock.lock_path(conf) == here  # a cron job and a login shell find the same lock


def refused(conf: Path, holder: int, cwd: Path | None = None) -> str:
    """Run a second ``scs -f conf``: it must exit 2 at once with one line; that line."""
    proc = subprocess.run(
        [SCS, "-f", str(conf)], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line, proc.stderr
    assert "Traceback" not in line
    assert f"is already supervised by pid {holder} (lock " in line
    assert line.endswith("; stop it first")
    assert proc.stdout == ""
    return line


def lines_of(logfile: Path, event_id: int) -> list[str]:
    return [x for x in logfile.read_text().splitlines() if f" {event_id:05d} " in x]


def spawn(conf: Path, logfile: Path) -> subprocess.Popen[bytes]:
    with logfile.open("wb") as out:
        return subprocess.Popen([SCS, "-f", str(conf)], stdout=out, stderr=out)


async def wait_logged(logfile: Path, event_id: int) -> list[str]:
    with trio.fail_after(30):
        while not (lines := lines_of(logfile, event_id)):
            await trio.sleep(0.05)
        return lines


async def test_a_second_supervisor_on_a_running_pair_is_refused(tmp_path: Path) -> None:
    system = System(tmp_path)
    system.start()
    try:
        rows = await system.wait(healthy)
        assert system.proc is not None
        started = system.logged(40101)
        line = refused(system.scs_conf, system.proc.pid)
        assert str(system.scs_conf) in line
        # Through another name of the same file (relative, from its directory): refused too.
        refused(Path("scs.conf"), system.proc.pid, cwd=system.scs_conf.parent)
        # Nothing was started or changed by the refused ones.
        after = await system.wait(healthy)
        assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in rows.items()}
        assert system.logged(40101) == started
        assert system.proc.poll() is None
    finally:
        system.stop()


async def test_without_a_control_port_and_released_when_the_holder_dies(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "scs.conf"
    conf.write_text(
        f"[sleeper]\ntype = proxy\nport = {free_port()}\nmanagement-port = {free_port()}\n"
        f"management-secret = x\nworking-directory = {tmp_path}\n"
        f"command = {sys.executable} -c 'import time; time.sleep(600)'\n"
    )
    conf.chmod(0o600)  # it holds a secret (else a warning line before the refusal)
    logs = [tmp_path / "first.log", tmp_path / "third.log"]
    procs: list[subprocess.Popen[bytes]] = []
    orphan: int | None = None
    try:
        procs.append(spawn(conf, logs[0]))
        (started,) = await wait_logged(logs[0], 40101)  # it holds the lock, runs its server
        orphan = int(started.split("pid ")[1].split()[0])
        refused(conf, procs[0].pid)
        procs[0].kill()  # SIGKILL: no clean-up of its own; its server lives on
        procs[0].wait()
        procs.append(spawn(conf, logs[1]))
        await wait_logged(logs[1], 40001)  # the kernel released it; the server never held it
        refused(conf, procs[1].pid)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
        if orphan is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, signal.SIGKILL)
