"""Installing iptables when it is missing, against a stand-in apt-get (nothing installed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import debian
from tests.multihost import tools
from tests.multihost.tools import IptablesUnavailable, NetnsUnavailable, ensure_iptables

FAKE_APT = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *update*) exit 0 ;;
  *install*) {install} ;;
esac
"""


def fake_apt(tmp_path: Path, install: str) -> Path:
    """A directory holding only an ``apt-get`` that logs its arguments and runs ``install``."""
    log = tmp_path / "apt.log"
    script = tmp_path / "apt-get"
    script.write_text(FAKE_APT.format(log=log, install=install))
    script.chmod(0o755)
    return log


@pytest.fixture
def no_iptables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Programs are looked up in ``tmp_path`` only, as root."""
    monkeypatch.setattr(tools, "_SBIN_PATH", str(tmp_path))
    monkeypatch.setattr(debian, "SBIN_PATH", str(tmp_path))  # where apt-get is looked up
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return tmp_path


def test_missing_iptables_is_installed_with_apt(no_iptables: Path) -> None:
    """As root with no iptables: apt-get install -y --no-install-recommends iptables, once."""
    log = fake_apt(
        no_iptables,
        f'printf "#!/bin/sh\\n" > "{no_iptables}/iptables"; chmod 755 "{no_iptables}/iptables"',
    )
    ensure_iptables()
    assert log.read_text().split() == [
        "-o",
        "DPkg::Lock::Timeout=120",
        "install",
        "-y",
        "--no-install-recommends",
        "iptables",
    ]
    ensure_iptables()  # now present: apt-get is not run again
    assert len(log.read_text().splitlines()) == 1


def test_a_failed_install_is_one_line_after_one_update(no_iptables: Path) -> None:
    """An unknown package triggers one apt-get update and a retry, then one clear line."""
    log = fake_apt(no_iptables, 'echo "E: Unable to locate package iptables" >&2; exit 100')
    with pytest.raises(IptablesUnavailable) as info:
        ensure_iptables()
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith("failed: E: Unable to locate package iptables")
    assert isinstance(info.value, NetnsUnavailable)  # so the fixture skips (fails under CI)
    calls = [line.split()[2] for line in log.read_text().splitlines()]
    assert calls == ["install", "update", "install"]


def test_not_root_does_not_try_to_install(
    no_iptables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without root there is nothing to do but say so."""
    log = fake_apt(no_iptables, "exit 0")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(IptablesUnavailable, match="not root"):
        ensure_iptables()
    assert not log.exists()
