"""Issue 12, credentials: the database file and files holding secrets are 0600, a
readable secret file is warned about, cfgctl never needs a secret on its command line."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from confserv.admin.secret_input import SECRET, SecretInputError, resolve
from confserv.config.permissions import exposure
from confserv.config.settings import load_server_settings
from confserv.model.passwords import COST_ENV, PasswordCost, cost_of
from tests.helpers.system import free_port

BIN = Path(sys.executable).parent
LOW = "n=2,r=1,p=1"
BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("CFG_PASSWORD", "CFG_SECRET")}
BASE_ENV |= {COST_ENV: LOW, "COLUMNS": "200"}


def run(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args,
        env={**BASE_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.umask(0o022),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def write_conf(tmp_path: Path, port: int, mport: int, mode: int = 0o600) -> Path:
    conf = tmp_path / "confserv.conf"
    conf.write_text(
        f"[confserv]\nport = {port}\nmanagement-port = {mport}\nmanagement-secret = sekret\n"
        "server = dbserver\n[log]\nverbose = standard\nall = stderr\n"
        "[dbserver]\ndbengine = sqlite\ndbname = cfg.sqlite\n"
    )
    conf.chmod(mode)
    return conf


def test_cfgctl_init_makes_the_database_file_0600(tmp_path: Path) -> None:
    """Was 0644 (umask 022) with every password hash inside."""
    conf = write_conf(tmp_path, free_port(), free_port())
    run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf), env={"CFG_PASSWORD": "x"})
    db = tmp_path / "cfg.sqlite"
    files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    print(modes)
    assert modes[db.name] == "0o600"
    assert set(modes.values()) == {"0o600"}


def test_the_servers_wal_and_shm_files_are_0600_too(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, free_port(), free_port())
    run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf), env={"CFG_PASSWORD": "x"})
    db = tmp_path / "cfg.sqlite"
    conn = sqlite3.connect(db)  # WAL mode is kept in the file: -wal and -shm appear
    conn.execute("SELECT count(*) FROM cfg_object").fetchall()
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob("cfg.sqlite*")}
    conn.close()
    assert "cfg.sqlite-wal" in modes
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_readable_database_is_made_0600_by_init(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, free_port(), free_port())
    run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf), env={"CFG_PASSWORD": "x"})
    db = tmp_path / "cfg.sqlite"
    db.chmod(0o644)
    run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf), env={"CFG_PASSWORD": "x"})
    assert db.stat().st_mode & 0o777 == 0o600


def test_a_readable_conf_holding_a_secret_gives_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was silent: confserv.conf 0644 with management-secret inside."""
    conf = write_conf(tmp_path, free_port(), free_port(), mode=0o644)
    load_server_settings(conf, "confserv")
    load_server_settings(conf, "confserv")  # loaded again: no second line
    lines = capsys.readouterr().err.splitlines()
    print(lines)
    assert len(lines) == 1
    assert "management-secret" in lines[0]
    assert "readable by its group and all users (mode 0644)" in lines[0]
    assert f"chmod 600 {conf}" in lines[0]
    conf.chmod(0o600)
    load_server_settings(conf, "confserv")
    assert capsys.readouterr().err == ""


def test_exposure_is_a_pure_check() -> None:
    assert exposure("f", 0o100600, ["management-secret"]) is None
    assert exposure("f", 0o100644, []) is None
    note = exposure("f", 0o100640, ["control-secret"])
    assert note is not None
    assert "its group" in note
    assert "all users" not in note


def test_secrets_come_from_a_file_the_environment_or_a_prompt(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_text("from-file\nignored\n")
    file.chmod(0o600)
    warn = io.StringIO()

    def no_tty() -> bool:
        return False

    assert resolve(SECRET, None, file, environ={}, stdin_is_tty=no_tty, warn=warn) == "from-file"
    assert warn.getvalue() == ""
    assert resolve(SECRET, None, None, environ={"CFG_SECRET": "env"}, stdin_is_tty=no_tty) == "env"
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed"

    got = resolve(SECRET, None, None, environ={}, stdin_is_tty=lambda: True, prompt=prompt)
    assert got == "typed"
    assert asked == ["The management secret: "]
    answers = iter(["one", "two"])
    with pytest.raises(SecretInputError, match="differ"):
        resolve(
            SECRET,
            None,
            None,
            environ={},
            stdin_is_tty=lambda: True,
            prompt=lambda _: next(answers),
            confirm=True,
        )
    with pytest.raises(SecretInputError, match="CFG_SECRET"):
        resolve(SECRET, None, None, environ={}, stdin_is_tty=no_tty)
    with pytest.raises(SecretInputError, match="not both"):
        resolve(SECRET, "x", file, environ={}, stdin_is_tty=no_tty)
    file.chmod(0o644)
    resolve(SECRET, None, file, environ={}, stdin_is_tty=no_tty, warn=warn)
    assert "readable by" in warn.getvalue()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    port, mport = free_port(), free_port()
    conf = write_conf(tmp_path, port, mport)
    (tmp_path / "pw").write_text("the-pw\n")
    (tmp_path / "pw").chmod(0o600)
    (tmp_path / "secret").write_text("sekret\n")
    (tmp_path / "secret").chmod(0o600)
    run(
        str(BIN / "cfgctl"),
        "init",
        "-s",
        "confserv",
        "-c",
        str(conf),
        "--password-file",
        str(tmp_path / "pw"),
    )
    proc = subprocess.Popen(
        [str(BIN / "confserv"), "-s", "confserv", "-c", str(conf)],
        env=BASE_ENV,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        status = [str(BIN / "cfgctl"), "status", "--server", f"127.0.0.1:{mport}"]
        while run(*status, "--secret-file", str(tmp_path / "secret"), check=False).returncode:
            assert proc.poll() is None, "confserv exited at start"
            assert time.monotonic() < deadline, "confserv not ready"
        yield tmp_path, port, mport
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            proc.kill()


@pytest.mark.integration
def test_cfgctl_takes_secrets_from_files_and_the_environment(
    running: tuple[Path, int, int],
) -> None:
    """Was only --password/--secret or the environment: now a file too, and a secret
    given on the command line is warned about once."""
    tmp, port, mport = running
    ctl, srv = str(BIN / "cfgctl"), f"127.0.0.1:{port}"
    ok = run(ctl, "get", "Host", "--server", srv, "--password-file", str(tmp / "pw"), "--json")
    assert ok.stderr == ""
    ok = run(ctl, "get", "Host", "--server", srv, env={"CFG_PASSWORD": "the-pw"})
    assert ok.stderr == ""
    shown = run(ctl, "get", "Host", "--server", srv, "--password", "the-pw")
    assert shown.stderr.count("\n") == 1
    assert "--password is visible to every user" in shown.stderr
    secret = run(
        ctl, "status", "--server", f"127.0.0.1:{mport}", "--secret-file", str(tmp / "secret")
    )
    assert "primary" in secret.stdout
    missing = run(ctl, "get", "Host", "--server", srv, check=False)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "CFG_PASSWORD" in missing.stderr


@pytest.mark.integration
def test_the_password_is_never_in_cfgctls_command_line(running: tuple[Path, int, int]) -> None:
    tmp, port, _ = running
    args = [str(BIN / "cfgctl"), "watch", "--server", f"127.0.0.1:{port}", "--count", "1"]
    watcher = subprocess.Popen(
        [*args, "--password-file", str(tmp / "pw")],
        env=BASE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while time.monotonic() < deadline and watcher.poll() is None:
            seen = Path(f"/proc/{watcher.pid}/cmdline").read_bytes()
            if b"watch" in seen:
                break
        assert b"watch" in seen
        assert b"the-pw" not in seen
    finally:
        watcher.kill()
        watcher.communicate(timeout=15)


def test_init_takes_a_password_cost(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, free_port(), free_port())
    ctl = str(BIN / "cfgctl")
    env = {"CFG_PASSWORD": "x"}
    bad = run(
        ctl,
        "init",
        "-s",
        "confserv",
        "-c",
        str(conf),
        "--password-cost",
        "n=3",
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "--password-cost" in bad.stderr
    run(ctl, "init", "-s", "confserv", "-c", str(conf), "--password-cost", "n=2^11", env=env)
    with sqlite3.connect(tmp_path / "cfg.sqlite") as conn:
        rows = conn.execute("SELECT data FROM cfg_object WHERE type = 'Person'").fetchall()
    assert len(rows) == 1
    assert "scrypt$2048$8$1$" in rows[0][0]
    assert cost_of("scrypt$2048$8$1$00$00") == PasswordCost(2**11)
