"""The ``lca`` command: a real agent process serving supervisors, and every bad file or
busy port as one line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.helpers.system import free_port
from tests.lca.test_agent import SECRET, SLEEP, agent_link

BIN = Path(sys.executable).parent


def write_conf(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "lca.conf"
    conf.write_text(body)
    conf.chmod(0o600)
    return conf


def spawn(conf: Path) -> subprocess.Popen[str]:
    """A real ``lca -c conf``, its stderr kept."""
    return subprocess.Popen([str(BIN / "lca"), "-c", str(conf)], stderr=subprocess.PIPE, text=True)


async def test_the_agent_process_serves_and_its_processes_outlive_it(tmp_path: Path) -> None:
    port = free_port()
    conf = write_conf(
        tmp_path, f"[lca]\nport = {port}\nagent-secret = {SECRET}\nhost-name = host-a\n"
    )
    agent = spawn(conf)
    pid = 0
    try:
        with trio.fail_after(20):
            while True:
                try:
                    async with agent_link(port) as a:
                        answer = await a.ask(
                            "start",
                            epoch=1,
                            name="cs",
                            argv=SLEEP,
                            cwd=str(tmp_path),
                            log=str(tmp_path / "cs.log"),
                        )
                        pid = answer["pid"]
                        break
                except OSError:  # not listening yet
                    await trio.sleep(0.05)
        assert (tmp_path / "lca-state" / "cs.json").exists()
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    assert agent.returncode == 0, err
    assert "agent of host-a listening on 127.0.0.1" in err
    os.kill(pid, 0)  # the process it started still runs
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[lca]\nport = 4999\n", "[lca] agent-secret: missing"),
        ("[lca]\nagent-secret = s\nprot = 1\n", "[lca] prot: unknown option"),
        (f"[lca]\nagent-secret = s\nport = {'9' * 5000}\n", "[lca] port: '9999"),
        ("[other]\nagent-secret = s\n", "no section [lca]"),
        ("agent-secret = s\n", "not in the [section] / option = value format"),
    ],
)
def test_a_bad_file_is_one_line_and_status_2(tmp_path: Path, body: str, message: str) -> None:
    conf = write_conf(tmp_path, body)
    proc = subprocess.run(
        [str(BIN / "lca"), "-c", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert "lca.conf" in lines[0]


def test_a_busy_port_is_one_line_and_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = write_conf(tmp_path, f"[lca]\nport = {port}\nagent-secret = s\n")
        proc = subprocess.run(
            [str(BIN / "lca"), "-c", str(conf)], capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"lca: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another agent running?)"
    ]


def test_a_port_below_2000_falls_back_to_4999_as_in_genesys(tmp_path: Path) -> None:
    from lca.config import load_agent_settings

    settings = load_agent_settings(write_conf(tmp_path, "[lca]\nport = 1500\nagent-secret = s\n"))
    assert settings.port == 4999
    assert settings.warnings == ("[lca] port 1500 is below 2000: using 4999",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("encryption = true\n", "[lca] tls-certificate: missing"),
        ("tls-ca = ca.pem\n", "[lca] tls-ca: not used with encryption = false"),
        ("encryption = true\ntls-certificate = nope.pem\n", "[lca] tls-certificate: certificate"),
        (
            "encryption = true\ntls-certificate = c.pem\ntls-client-certificates = required\n",
            "required needs tls-ca",
        ),
    ],
)
def test_bad_tls_options_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    from lca.config import AgentConfigError, load_agent_settings

    with pytest.raises(AgentConfigError, match=message.replace("[", r"\[")) as info:
        load_agent_settings(write_conf(tmp_path, f"[lca]\nagent-secret = s\n{body}"))
    assert "\n" not in str(info.value)
