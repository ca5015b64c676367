"""The TLS options as an operator writes them: every mistake is one line and exit 2
(issue 12: TLS on every port), from the real commands (``confserv``, ``scs``,
``cfgctl``); the settings a good file gives.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from confserv.config.settings import load_server_settings
from scs.config import load_scs_settings

from ..helpers.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _conf(tmp_path: Path, tls: str) -> Path:
    conf = tmp_path / "confserv.conf"
    conf.write_text(
        "[confserv]\nport = 2120\nmanagement-port = 2121\nmanagement-secret = s\n"
        f"server = db\n{tls}[db]\ndbengine = sqlite\ndbname = cfg.sqlite\n"
    )
    conf.chmod(0o600)
    return conf


def _confserv(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "confserv"), "-s", "confserv", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_bad_tls_options_are_one_line_and_exit_2(tmp_path: Path, files: TlsFiles) -> None:
    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    cases = {
        "encryption = true\n": "[confserv] tls-certificate: missing (encryption = true needs",
        f"encryption = true\ntls-certificate = {files.certificate}\n"
        f"tls-private-key = {tmp_path / 'missing.pem'}\n": (
            f"[confserv] tls-private-key: private key '{tmp_path / 'missing.pem'}': "
            "no such file or directory"
        ),
        f"encryption = true\ntls-certificate = {bad_pem}\n"
        f"tls-private-key = {files.private_key}\n": (
            f"[confserv] tls-certificate: certificate '{bad_pem}': not a PEM certificate"
        ),
        f"encryption = true\ntls-certificate = {files.certificate}\n"
        f"tls-private-key = {files.stranger_key}\n": (
            f"[confserv] tls-private-key: private key '{files.stranger_key}': does not match"
        ),
        f"encryption = true\ntls-certificate = {files.certificate}\n"
        f"tls-private-key = {files.private_key}\ntls-client-certificates = required\n": (
            "[confserv] tls-ca: missing (tls-client-certificates = required needs the CA"
        ),
        f"tls-ca = {files.ca}\n": "[confserv] tls-ca: not used when encryption is false",
    }
    for lines, expected in cases.items():
        line = _one_line(_confserv(_conf(tmp_path, lines)))
        assert expected in line, line
        assert line.startswith("confserv: "), line


def test_a_good_file_gives_both_contexts(tmp_path: Path, files: TlsFiles) -> None:
    settings = load_server_settings(_conf(tmp_path, files.lines("optional")), "confserv")
    tls = settings.tls
    assert settings.encryption
    assert tls.encryption
    assert tls.server is not None
    assert tls.server.verify_mode == ssl.CERT_OPTIONAL
    assert tls.server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.client is not None
    assert tls.client.context.check_hostname
    assert tls.client.context.verify_mode == ssl.CERT_REQUIRED
    plain = load_server_settings(_conf(tmp_path, ""), "confserv")
    assert plain.tls.server is None
    assert plain.tls.client is None


def _scs_conf(tmp_path: Path, scs: str, server: str = "") -> Path:
    conf = tmp_path / "scs.conf"
    sections = "".join(
        f"[{name}]\nport = {port}\nmanagement-port = {port + 1}\nmanagement-secret = s\n"
        f"server = {peer}\nautostart = false\nautorestart = false\n{server}"
        for name, peer, port in (("a", "b", 3000), ("b", "a", 3010))
    )
    conf.write_text(f"[scs]\ncontrol-port = 3100\ncontrol-secret = c\n{scs}{sections}")
    conf.chmod(0o600)
    return conf


def test_scs_tls(tmp_path: Path, files: TlsFiles) -> None:
    proc = subprocess.run(
        [str(BIN / "scs"), "-f", str(_scs_conf(tmp_path, "encryption = true\n"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "[scs] tls-certificate: missing" in _one_line(proc)
    # [scs] encryption: the control port and (by default) every server on TLS
    settings = load_scs_settings(_scs_conf(tmp_path, files.lines()))
    assert settings.tls.server is not None
    assert settings.control_tls is not None
    assert all(spec.tls is not None for spec in settings.servers.values())
    # only the servers on TLS: the supervisor needs its CA, not a certificate
    only = load_scs_settings(
        _scs_conf(tmp_path, f"tls-ca = {files.ca}\n", "encryption = true\ntls-server-name = cs\n")
    )
    assert only.tls.server is None
    assert only.control_tls is None
    assert {spec.tls.server_name for spec in only.servers.values() if spec.tls} == {"cs"}


def test_cfgctl_tls_options_are_checked(tmp_path: Path, files: TlsFiles) -> None:
    env = {**os.environ, "CFG_PASSWORD": "pw"}
    proc = subprocess.run(
        [str(BIN / "cfgctl"), "--tls-ca", str(files.private_key), "get", "Person"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = _one_line(proc)
    assert f"cfgctl: --tls-ca: CA '{files.private_key}': not a PEM certificate" in line, line
