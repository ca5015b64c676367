"""The command lines as an operator runs them: real processes, real files, real signals."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.system import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ENV = {**os.environ, "CFG_PASSWORD": "pw", "CFG_SECRET": "sekret", "COLUMNS": "200"}


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def write_conf(tmp_path: Path, port: int, mport: int) -> Path:
    conf = tmp_path / "confserv.conf"
    conf.write_text(
        f"""[confserv]
port = {port}
management-port = {mport}
management-secret = sekret
server = dbserver
encryption = false
encoding = utf-8
[log]
verbose = standard
all = stderr
[hca]
schema = none
[dbserver]
dbengine = sqlite
dbname = cfg.sqlite
username = sa
password = sa
"""
    )
    return conf


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int, int, subprocess.Popen[str]]]:
    port, mport = free_port(), free_port()
    conf = write_conf(tmp_path, port, mport)
    run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf))
    proc = subprocess.Popen(
        [str(BIN / "confserv"), "-s", "confserv", "-c", str(conf)],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the condition "the management port answers", with a deadline
            status = run(
                str(BIN / "cfgctl"),
                "status",
                "--server",
                f"127.0.0.1:{mport}",
                "--json",
                check=False,
            )
            if status.returncode == 0:
                break
            assert proc.poll() is None, "confserv exited at start"
            assert time.monotonic() < deadline, f"confserv not ready: {status.stderr}"
        yield conf, port, mport, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            proc.kill()
            if proc.stderr is not None:
                proc.stderr.close()


def test_init_twice_changes_nothing(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, free_port(), free_port())
    first = run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf))
    assert "created  Person default" in first.stdout
    second = run(str(BIN / "cfgctl"), "init", "-s", "confserv", "-c", str(conf))
    assert "created" not in second.stdout
    assert "existing Person default" in second.stdout


def test_an_operator_session(
    running: tuple[Path, int, int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    _conf, port, mport, proc = running
    ctl = str(BIN / "cfgctl")
    srv = f"127.0.0.1:{port}"
    out = run(
        ctl,
        "put",
        "host",
        "hostB",
        "ip_address=10.1.1.1",
        "lca_port=5000",
        "--server",
        srv,
        "--json",
    )
    assert json.loads(out.stdout)["action"] == "created"
    run(ctl, "put", "Host", "hostB", "--option", "addp.timeout=5", "--server", srv)
    [host] = json.loads(run(ctl, "get", "Host", "hostB", "--server", srv, "--json").stdout)
    assert host["lca_port"] == 5000
    assert host["options"] == {"addp": {"timeout": "5"}}
    table = run(ctl, "get", "Host", "--server", srv).stdout
    assert "hostB" in table
    status = json.loads(run(ctl, "status", "--server", f"127.0.0.1:{mport}", "--json").stdout)
    assert status["role"] == "primary"
    assert status["pid"] == proc.pid
    assert status["epoch"] >= 1
    exported = tmp_path / "export.yaml"
    run(ctl, "export", "-o", str(exported), "--server", srv)
    assert "hostB" in exported.read_text()
    run(ctl, "delete", "Host", "hostB", "--server", srv)
    assert run(ctl, "get", "Host", "hostB", "--server", srv, check=False).returncode == 1
    counts = run(ctl, "import", str(exported), "--server", srv).stdout
    assert "1 created" in counts
    assert (
        json.loads(run(ctl, "get", "Host", "hostB", "--server", srv, "--json").stdout)[0][
            "lca_port"
        ]
        == 5000
    )


def test_wrong_password_and_secret_are_one_line_errors(
    running: tuple[Path, int, int, subprocess.Popen[str]],
) -> None:
    _conf, port, mport, _proc = running
    ctl = str(BIN / "cfgctl")
    wrong = {**ENV, "CFG_PASSWORD": "nope", "CFG_SECRET": "nope"}
    args = [ctl, "get", "Host", "--server", f"127.0.0.1:{port}"]
    bad = subprocess.run(args, env=wrong, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert "wrong user name or password" in bad.stderr
    args = [ctl, "status", "--server", f"127.0.0.1:{mport}"]
    bad = subprocess.run(args, env=wrong, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert "authentication failed" in bad.stderr


@pytest.mark.parametrize(
    ("body", "section", "message"),
    [
        (None, "confserv", "cannot read the file"),
        ("[other]\nport = 1\n", "confserv", "no section [confserv]"),
        (
            "[confserv]\nport = 2120\nprot = 3\nserver = db\n[db]\ndbengine = sqlite\ndbname = x\n",
            "confserv",
            "[confserv] prot: unknown option",
        ),
        (
            "[confserv]\nport = 99999\nserver = db\n[db]\ndbengine = sqlite\ndbname = x\n",
            "confserv",
            "[confserv] port: '99999'",
        ),
        (
            "[confserv]\nport = 2120\nserver = db\n[db]\ndbengine = mssql\ndbname = x\n",
            "confserv",
            "[db] dbengine: 'mssql' is not supported",
        ),
        (  # issue 12: int() of a 5,000-digit string raised a ValueError traceback
            f"[confserv]\nport = {'9' * 5000}\nserver = db\n[db]\ndbengine = sqlite\ndbname = x\n",
            "confserv",
            "(5000 characters) is not a port number (1 to 65535)",
        ),
        (
            f"[p]\nport = 2140\nmode = proxy\nmaster = h:{'9' * 5000}\n",
            "p",
            "(5002 characters) is not host:port",
        ),
    ],
)
def test_a_broken_configuration_file_is_one_line_and_status_2(
    tmp_path: Path, body: str | None, section: str, message: str
) -> None:
    conf = tmp_path / "c.conf"
    if body is not None:
        conf.write_text(body)
    proc = run(str(BIN / "confserv"), "-s", section, "-c", str(conf), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert "c.conf" in lines[0]


def test_a_proxy_whose_port_is_taken_exits_2_with_one_line(tmp_path: Path) -> None:
    """make chaos's simulation (seeds 25729, 28354, 28605): a second proxy, started by a
    restarted supervisor while the first was paused, died of an OSError traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = tmp_path / "proxy.conf"
        conf.write_text(
            f"[proxy]\nport = {port}\nmode = proxy\nmaster = 127.0.0.1:{free_port()}\n"
            "management-secret = sekret\n[log]\nverbose = standard\nall = stderr\n"
        )
        proc = run(str(BIN / "confserv"), "-s", "proxy", "-c", str(conf), check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("confserv:")]
    assert errors == [
        f"confserv: [proxy] cannot listen on 127.0.0.1 port {port}: "
        "Address already in use (is another process using it?)"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["confserv", "cfgctl", "scs", "lca"])
def test_every_command_answers_help_cleanly_and_its_version(command: str) -> None:
    """Issue 15: help showed RST backquotes, lost [scs] to rich markup and showed
    flags as --json <bool>; there was no --version and no shell completion."""
    shown = run(str(BIN / command), "--help").stdout
    assert "Usage" in shown
    assert "``" not in shown
    assert "<bool>" not in shown
    assert "--install-completion" in shown
    if command == "scs":
        assert "[scs] control-" in shown
    version = run(str(BIN / command), "--version").stdout
    assert version == f"{command} {importlib.metadata.version('cfgha')}\n"


def test_a_log_file_that_cannot_be_created_is_one_line_and_status_2(tmp_path: Path) -> None:
    """Issue 12: a log file in a folder that cannot exist was a FileNotFoundError traceback."""
    conf = tmp_path / "proxy.conf"
    conf.write_text(
        f"[proxy]\nport = {free_port()}\nmode = proxy\nmaster = 127.0.0.1:{free_port()}\n"
        "management-secret = sekret\n[log]\nverbose = standard\nall = /proc/no/such/cs.log\n"
    )
    conf.chmod(0o600)
    proc = run(str(BIN / "confserv"), "-s", "proxy", "-c", str(conf), check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "confserv: [log] all: cannot open the log file /proc/no/such/cs.log: "
        "No such file or directory (create its folder, fix the path, or use stderr)"
    ]
