"""scs.conf: the example loads; every broken file is one line naming section and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserv.config.settings import ConfigError
from scs.config import SERVER_OPTIONS, load_scs_settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "scs.conf"

GOOD = """[scs]
control-port = 2190
control-secret = s
[a]
host = 127.0.0.1
port = 3000
server = b
management-port = 3001
management-secret = x
command = confserv -s a -c a.conf
[b]
port = 3010
server = a
management-port = 3011
management-secret = x
command = confserv -s b -c b.conf
[p]
type = proxy
port = 3020
management-port = 3021
management-secret = x
command = confserv -s p -c p.conf
"""


def load(tmp_path: Path, text: str) -> object:
    conf = tmp_path / "scs.conf"
    conf.write_text(text)
    return load_scs_settings(conf)


def test_the_example_loads() -> None:
    settings = load_scs_settings(EXAMPLE)
    assert [p.members for p in settings.pairs] == [("confserv", "Backup CS")]
    assert [p.section for p in settings.proxies] == ["proxy"]
    assert settings.control_port == 2190


def test_a_good_file(tmp_path: Path) -> None:
    settings = load(tmp_path, GOOD)
    assert settings.pairs[0].name == "a"  # type: ignore[attr-defined]
    assert settings.servers["a"].restart.limit == 5  # type: ignore[attr-defined]
    assert settings.auth_timeout == 5.0  # type: ignore[attr-defined]
    quick = load(
        tmp_path, GOOD.replace("control-secret = s\n", "control-secret = s\nauth-timeout = 1.5\n")
    )
    assert quick.auth_timeout == 1.5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("port = 3010\n", "port = 3010\nbogus = 1\n"), "[b] bogus: unknown option"),
        (("server = a\n", "server = p\n"), "[a] server: [b] does not link back"),
        (("server = a\n", "server = zz\n"), "[b] server: no section [zz] for the peer"),
        (("port = 3010\n", "port = 3000\n"), "[b] port: 3000 is also [a] port"),
        (
            ("management-port = 3021\n", "management-port = 3001\n"),
            "[p] management-port: 3001 is also [a] management-port",
        ),
        (("type = proxy\n", "type = proxy\nserver = a\n"), "[p] server: a proxy has no peer"),
        (("management-port = 3011\n", ""), "[b] management-port: missing"),
        (("command = confserv -s b -c b.conf\n", ""), "[b] command: missing"),
        (("control-secret = s\n", ""), "[scs] control-secret: missing"),
        (
            ("control-secret = s\n", "control-secret = s\nauth-timeout = 0\n"),
            "[scs] auth-timeout: '0' is not a number of seconds",
        ),
        (
            ("server = b\n", "server = b\nrestart-limit = 0\n"),
            "[a] restart-limit: '0' is not a number of restarts",
        ),
        (
            ("server = b\n", "server = b\naddp-timeout = soon\n"),
            "[a] addp-timeout: 'soon' is not a number",
        ),
    ],
)
def test_each_broken_file_is_one_clear_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    # Apply to the section the message names (the first match after its header).
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20))
def test_any_unknown_key_is_named(key: str) -> None:
    import tempfile

    if key in SERVER_OPTIONS:
        return
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "scs.conf"
        conf.write_text(GOOD.replace("[b]\n", f"[b]\n{key} = 1\n"))
        with pytest.raises(ConfigError, match=f"\\[b\\] {key}: unknown option"):
            load_scs_settings(conf)


def test_the_command_line_exits_2_with_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "scs.conf"
    conf.write_text(GOOD.replace("server = a\n", "server = p\n"))
    scs = Path(sys.executable).parent / "scs"
    proc = subprocess.run([str(scs), "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "does not link back" in proc.stderr


def test_a_readable_scs_conf_holding_secrets_is_warned_about_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: scs.conf holds control-secret and the servers' management-secret."""
    path = tmp_path / "scs.conf"
    path.write_text(GOOD)
    path.chmod(0o644)
    load_scs_settings(path)
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1, lines
    assert "control-secret" in lines[0]
    assert "management-secret" in lines[0]
    assert f"chmod 600 {path}" in lines[0]
    path.chmod(0o600)
    load_scs_settings(path)
    assert capsys.readouterr().err == ""
