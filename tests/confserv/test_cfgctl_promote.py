"""``cfgctl promote --force`` asks first while the primary answered recently (issue 15).

Each case of :mod:`confserv.admin.force_check` through the command (the
management port faked, a terminal or not), then the real thing: a backup
following its live primary refuses without a terminal, asks under a
pseudo-terminal, and once the primary is killed and unheard of, forces without
a question.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from typer.testing import CliRunner

import confserv.client.session
from confserv.admin import cfgctl_manage
from confserv.admin.cfgctl import app

from ..helpers.nodes import pair_nodes
from ..helpers.system import BIN, SECRET

QUESTION_END = (
    "; forcing makes 'backup' primary without waiting for it to let go of the lease, "
    "and both may serve until it is fenced. Type yes to go on: "
)
REFUSAL_END = "; give --yes to force anyway, or promote without --force to wait for the lease\n"
PROMOTED = "backup: primary at epoch 4, serial 9\n"


class FakeManagement:
    """The target's management port: its status, and the promotions asked of it."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.answer = {"name": "backup", "lease_ttl": 2.0, **status}
        self.promoted: list[bool] = []
        self.asked = 0

    async def status(self) -> dict[str, Any]:
        self.asked += 1
        return dict(self.answer)

    async def switch_to_primary(self, *, force: bool = False) -> dict[str, Any]:
        self.promoted.append(force)
        return {"name": "backup", "role": "primary", "epoch": 4, "serial": 9}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeManagement:
    target = FakeManagement({})

    @asynccontextmanager
    async def open_management(*_args: Any, **_kw: Any) -> AsyncIterator[FakeManagement]:
        yield target

    monkeypatch.setattr(confserv.client.session, "open_management", open_management)
    monkeypatch.setenv("CFG_SECRET", "s")
    return target


def promote(
    monkeypatch: pytest.MonkeyPatch, *args: str, terminal: bool, typed: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(cfgctl_manage, "_on_a_terminal", lambda: terminal)
    done = CliRunner().invoke(
        app, ["promote", "--server", "127.0.0.1:2131", "--force", *args], input=typed
    )
    return done.exit_code, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("status", "heard"),
    [
        (
            {"following": "confserv"},
            "primary 'confserv' is answering ('backup' follows its stream)",
        ),
        (
            {"following": None, "primary_heard_ago": 0.42, "primary": "127.0.0.1:2120"},
            "primary '127.0.0.1:2120' answered 0.4 s ago",
        ),
        (
            {"following": None, "primary_heard_ago": 1.94, "primary_heard_from": "confserv"},
            "primary 'confserv' answered 1.9 s ago",
        ),
    ],
)
def test_a_recent_primary_without_a_terminal_is_refused(
    fake: FakeManagement, monkeypatch: pytest.MonkeyPatch, status: dict[str, Any], heard: str
) -> None:
    fake.answer.update(status)
    assert promote(monkeypatch, terminal=False) == (
        2,
        "",
        f"cfgctl: promote --force: {heard}{REFUSAL_END}",
    )
    assert fake.promoted == []


def test_a_recent_primary_on_a_terminal_is_asked_about(
    fake: FakeManagement, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer.update(following="confserv", primary_heard_ago=1.25)
    question = f"primary 'confserv' answered 1.2 s ago{QUESTION_END}"
    assert promote(monkeypatch, terminal=True, typed="no\n") == (
        1,
        "",
        f"{question}cfgctl: promote --force: not confirmed; nothing was changed\n",
    )
    assert fake.promoted == []
    assert promote(monkeypatch, terminal=True, typed="yes\n") == (0, PROMOTED, question)
    assert fake.promoted == [True]


def test_yes_skips_the_question(fake: FakeManagement, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.answer.update(following="confserv", primary_heard_ago=0.1)
    assert promote(monkeypatch, "--yes", terminal=False) == (0, PROMOTED, "")
    assert (fake.promoted, fake.asked) == ([True], 0)


@pytest.mark.parametrize(
    "status",
    [
        {"following": None},
        {"following": None, "primary_heard_ago": 2.0},  # a lease-ttl ago: not recent
        {"following": None, "primary_heard_ago": 30.0, "lease_ttl": None},  # over 10 s
    ],
)
def test_a_primary_not_heard_of_for_a_while_is_no_question(
    fake: FakeManagement, monkeypatch: pytest.MonkeyPatch, status: dict[str, Any]
) -> None:
    fake.answer.update(status)
    assert promote(monkeypatch, terminal=False) == (0, PROMOTED, "")
    assert fake.promoted == [True]


def cfgctl_under_a_terminal(args: list[str], typed: bytes) -> tuple[int, str]:
    """Run cfgctl with a pseudo-terminal as its stdin and stderr; type ``typed`` once
    asked; (exit status, what the terminal showed)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "cfgctl"), *args],
        stdin=terminal,
        stderr=terminal,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "CFG_SECRET": SECRET},
    )
    os.close(terminal)
    shown = b""
    try:
        while b"Type yes to go on: " not in shown:
            chunk = os.read(controller, 4096)
            assert chunk, shown
            shown += chunk
        os.write(controller, typed)
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: cfgctl has exited
                break
            if not chunk:
                break
            shown += chunk
        return proc.wait(timeout=30), shown.decode().replace("\r\n", "\n")
    finally:
        os.close(controller)
        proc.kill()
        proc.wait()


async def test_a_real_backup_asks_while_its_primary_answered_within_a_lease(
    tmp_path: Path,
) -> None:
    with pair_nodes(tmp_path, verbose="standard") as pair:
        first, second = pair.masters
        first.start()
        await first.wait_role("primary")
        second.start()
        with trio.fail_after(30):
            while ((await second.status()) or {}).get("following") != "confserv":
                await trio.sleep(0.02)
        args = ["promote", "--force", "--server", f"127.0.0.1:{second.mport}"]

        def cfgctl() -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "CFG_SECRET": SECRET}
            return subprocess.run(
                [str(BIN / "cfgctl"), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )

        refused = await trio.to_thread.run_sync(cfgctl)
        # the backup's status says when it last heard its primary (primary_heard_ago)
        heard = re.compile(r"primary 'confserv' answered (\d+\.\d) s ago")
        line = re.fullmatch(
            f"cfgctl: promote --force: {heard.pattern}{re.escape(REFUSAL_END)}", refused.stderr
        )
        assert (refused.returncode, refused.stdout) == (2, "")
        assert line is not None, refused.stderr
        assert float(line.group(1)) < 2.0
        code, shown = await trio.to_thread.run_sync(cfgctl_under_a_terminal, args, b"no\n")
        asked = re.fullmatch(
            f"{heard.pattern}{re.escape(QUESTION_END)}no\ncfgctl: promote --force: not "
            "confirmed; nothing was changed\n",
            shown,
        )
        assert code == 1
        assert asked is not None, shown
        assert ((await second.status()) or {}).get("role") == "backup"

        first.kill()
        # Killed: its stream ends, but it answered less than a lease ago (asked still);
        # once it has been silent for a whole lease-ttl, no question.
        with trio.fail_after(30):
            while True:
                status = (await second.status()) or {}
                ago, ttl = status.get("primary_heard_ago"), status.get("lease_ttl")
                if status.get("following") is None and ago is not None and ago >= ttl:
                    break
                await trio.sleep(0.05)
        forced = await trio.to_thread.run_sync(cfgctl)
        assert (forced.returncode, forced.stderr) == (0, "")
        assert forced.stdout.startswith("backup: primary at epoch ")
        assert (await second.wait_role("primary", timeout=10))["name"] == "backup"
