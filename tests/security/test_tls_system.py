"""The whole system over TLS through ``scs -f`` (issue 12: TLS on every port): a SIGKILL
failover of the primary with a writer running loses no acknowledged write, on SQLite
and on PostgreSQL.

Every port and link is on TLS with client certificates required, so each
component proves it speaks TLS with its certificate: the supervisor (management
ports), the backup (its primary's management port), the writer (client ports),
the test (the control port). A plain client is refused on a TLS port with one
line, ``cfgctl`` gets in with the CA and a certificate and is refused without one.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from confserv.client.session import open_client
from confserv.wire.errors import NoServerError
from tests.pg_cluster import PgCluster, require_pg_bin, running_cluster

from ..helpers.system import (
    BIN,
    PASSWORD,
    SECRET,
    System,
    Writer,
    healthy,
    sigkill_primary_under_writes,
)
from ..helpers.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    made = make_tls_files(tmp_path_factory.mktemp("tls"))
    return dataclasses.replace(made, client_certificates="required")


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    require_pg_bin()
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgre"])
def system(request: pytest.FixtureRequest, tmp_path: Path, files: TlsFiles) -> Iterator[System]:
    db_section = None
    if request.param == "postgre":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        db_section = (
            f"dbengine = postgre\ndbserver = {cluster.host}\nport = {cluster.port}\n"
            f"dbname = {cluster.create_database()}\nusername = {cluster.user}\n"
            f"password = {cluster.password}\n"
        )
    sys_ = System(tmp_path, db_section=db_section, proxy=False, verbose="standard", tls=files)
    sys_.start()
    try:
        yield sys_
    finally:
        sys_.stop()


def _run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``cfgctl`` or ``scs`` as an operator runs it (the system's other processes go on)."""
    env = {**os.environ, "CFG_PASSWORD": PASSWORD, "CFG_SECRET": SECRET, "COLUMNS": "200"}
    return subprocess.run(
        [str(BIN / command), *args], capture_output=True, text=True, timeout=60, env=env
    )


async def test_sigkill_failover_over_tls_loses_no_acknowledged_write(
    system: System, files: TlsFiles
) -> None:
    writer = Writer.for_system(system)
    old, new = await sigkill_primary_under_writes(system, writer)
    rows = await system.wait(lambda r: healthy(r) and r[old]["role"] == "backup")
    assert rows[new]["epoch"] >= 2
    await writer.check(system.address(new))  # every acknowledged write is there
    assert writer.acks[-1].epoch >= 2
    # Every link inside the system spoke TLS: no server refused a TLS handshake so far.
    for section in ("confserv", "backup"):
        assert "TLS handshake failed" not in system.server_log(section)
        assert "Traceback" not in system.server_log(section)

    # A plain client is told the port speaks TLS; the port goes on serving.
    with pytest.raises(NoServerError, match="this port speaks TLS only"):
        async with open_client([system.address(new)], app="p", user="default", password="pw"):
            pass
    # Without a client certificate: refused by the server, in one line.
    with pytest.raises(NoServerError, match="the peer refused it: certificate required"):
        async with open_client(
            [system.address(new)],
            app="p",
            user="default",
            password=PASSWORD,
            tls=files.client(certificate=False),
        ):
            pass
    # cfgctl: with the CA and a certificate it reads; without the certificate it is refused.
    server = f"127.0.0.1:{system.ports[new]}"
    tls = ["--tls-ca", str(files.ca)]
    mine = [*tls, "--tls-certificate", str(files.certificate)]
    mine += ["--tls-private-key", str(files.private_key)]
    got = _run("cfgctl", *mine, "get", "DN", writer.acked[0], "--server", server, "--json")
    assert got.returncode == 0, got.stderr
    refused = _run("cfgctl", *tls, "get", "DN", "--server", server)
    assert refused.returncode == 1
    assert "certificate required" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    status = _run(
        "cfgctl", *mine, "status", "--server", f"127.0.0.1:{system.management_ports[new]}"
    )
    assert status.returncode == 0, status.stderr
    # scs status reaches the control port over TLS with [scs]'s certificate.
    scs = _run("scs", "status", "-f", str(system.scs_conf), "--json")
    assert scs.returncode == 0, scs.stderr
    assert '"role": "primary"' in scs.stdout
    # The server logged the plain client's refusal (so the check above could see one).
    with trio.fail_after(10):
        while "TLS handshake failed: the peer did not speak TLS" not in system.server_log(new):
            await trio.sleep(0.05)
    assert "Traceback" not in system.server_log(new)
    assert "Traceback" not in system.log()
