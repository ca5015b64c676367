"""The throwaway PostgreSQL cluster of ``tests/pg_cluster.py`` does what it says.

Checked with the ``psql`` client over TCP, as the application would connect:
password authentication for ``cfg``, per-test databases, and that stopping,
killing and pausing the server leave no process behind. Skipped when no
PostgreSQL is installed, except under CI, where that is a failure.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_cluster import PgCluster, _is_alive, require_pg_bin, running_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_bin() -> Path:
    return require_pg_bin()


@pytest.fixture(scope="module")
def cluster(pg_bin: Path) -> Iterator[PgCluster]:
    with running_cluster(bin_dir=pg_bin) as pg:
        yield pg


def tcp_psql(
    pg: PgCluster,
    sql: str,
    *,
    password: str | None,
    dbname: str | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``sql`` through ``psql`` over TCP to 127.0.0.1 with ``PGPASSWORD``.

    ``-w`` makes a missing password an error instead of a prompt; the
    environment carries no other ``PG*`` setting and no password file.
    """
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PGPASSFILE": "/nonexistent"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [
            str(pg.bin_dir / "psql"),
            "--no-psqlrc",
            "--no-password",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "--set",
            "ON_ERROR_STOP=1",
            "--host",
            pg.host,
            "--port",
            str(pg.port),
            "--username",
            user or pg.user,
            "--dbname",
            dbname or pg.dbname,
            "--command",
            sql,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def postgres_processes_for(data_dir: Path) -> list[int]:
    """Live processes whose command line names ``data_dir`` (i.e. its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(data_dir).encode() in argv and _is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_connection_parameters(cluster: PgCluster) -> None:
    assert cluster.host == "127.0.0.1"
    assert (cluster.user, cluster.password, cluster.dbname) == ("cfg", "cfg-secret", "cfgdb")
    assert cluster.dsn == f"postgresql://cfg:cfg-secret@127.0.0.1:{cluster.port}/cfgdb"
    show = cluster.psql("SHOW listen_addresses; SHOW fsync; SHOW synchronous_commit;")
    assert show.split() == ["127.0.0.1", "on", "on"]


def test_cfg_logs_in_over_tcp_with_its_password(cluster: PgCluster) -> None:
    result = tcp_psql(
        cluster,
        "SELECT current_user, current_database(), inet_server_addr(), inet_server_port()",
        password="cfg-secret",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cfg|cfgdb|127.0.0.1|{cluster.port}"


def test_the_dsn_is_usable_as_is(cluster: PgCluster) -> None:
    result = subprocess.run(
        [str(cluster.bin_dir / "psql"), "-X", "-w", "-tA", "-c", "SELECT 1", cluster.dsn],
        env={"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_the_password_is_stored_as_scram(cluster: PgCluster) -> None:
    stored = cluster.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'cfg'")
    assert stored.startswith("SCRAM-SHA-256$")


def test_a_wrong_password_is_refused(cluster: PgCluster) -> None:
    result = tcp_psql(cluster, "SELECT 1", password="not-the-secret")
    assert result.returncode != 0
    assert 'password authentication failed for user "cfg"' in result.stderr


def test_tcp_without_a_password_is_refused(cluster: PgCluster) -> None:
    # TCP is never "trust", not even for the superuser.
    for user in ("cfg", "postgres"):
        result = tcp_psql(cluster, "SELECT 1", password=None, user=user)
        assert result.returncode != 0
        assert "no password supplied" in result.stderr


def test_create_database_gives_a_fresh_usable_database(cluster: PgCluster) -> None:
    first = cluster.create_database()
    second = cluster.create_database("named_for_a_test")
    assert first != second
    assert second == "named_for_a_test"
    for name in (first, second):
        owner = cluster.psql(
            f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'"
        )
        assert owner.strip() == "cfg"
        empty = tcp_psql(
            cluster,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            password="cfg-secret",
            dbname=name,
        )
        assert (empty.returncode, empty.stdout.strip()) == (0, "0"), empty.stderr
    used = tcp_psql(
        cluster,
        "CREATE TABLE t (k text PRIMARY KEY, v int); INSERT INTO t VALUES ('a', 1); "
        "SELECT v FROM t WHERE k = 'a'",
        password="cfg-secret",
        dbname=first,
    )
    assert (used.returncode, used.stdout.strip()) == (0, "1"), used.stderr
    # Each test's database is its own: the table is not visible from the other one.
    other = tcp_psql(
        cluster, "SELECT to_regclass('t') IS NULL", password="cfg-secret", dbname=second
    )
    assert other.stdout.strip() == "t", other.stderr


def test_create_database_rejects_names_needing_quotes(cluster: PgCluster) -> None:
    with pytest.raises(ValueError, match="not a plain database name"):
        cluster.create_database('x"; DROP DATABASE cfgdb; --')


def test_stop_leaves_no_postgres_process(pg_bin: Path) -> None:
    with running_cluster(bin_dir=pg_bin) as pg:
        pids = pg.server_pids()
        assert len(pids) > 1  # postmaster plus checkpointer, walwriter, ...
        assert postgres_processes_for(pg.data_dir) == [pids[0]]
        pg.stop()
        assert not pg.running
        assert [p for p in pids if _is_alive(p)] == []
        assert postgres_processes_for(pg.data_dir) == []
        assert not (pg.data_dir / "postmaster.pid").exists()
        work_dir = pg.work_dir
    assert not work_dir.exists()


def test_kill_then_restart_recovers_committed_data(pg_bin: Path) -> None:
    with running_cluster(bin_dir=pg_bin) as pg:
        port = pg.port
        wrote = tcp_psql(
            pg, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)", password="cfg-secret"
        )
        assert wrote.returncode == 0, wrote.stderr
        pids = pg.server_pids()
        pg.kill()
        assert [p for p in pids if _is_alive(p)] == []
        refused = tcp_psql(pg, "SELECT 1", password="cfg-secret")
        assert refused.returncode != 0
        pg.restart()  # crash recovery, same port
        assert pg.port == port
        read = tcp_psql(pg, "SELECT v FROM t", password="cfg-secret")
        assert (read.returncode, read.stdout.strip()) == (0, "42"), read.stderr
        assert "was interrupted" in pg.log_path.read_text()  # it did recover


def test_pause_stalls_the_server_and_resume_revives_it(pg_bin: Path) -> None:
    # An SSLRequest (length 8, code 80877103): the server answers it with one
    # byte, "N" here (no SSL configured), before any authentication.
    ssl_request = struct.pack("!ii", 8, 80877103)
    with running_cluster(bin_dir=pg_bin) as pg:
        pg.pause()
        with socket.create_connection((pg.host, pg.port), timeout=5) as sock:
            # The kernel completes the handshake on the listen socket, but nobody answers.
            sock.sendall(ssl_request)
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            pg.resume()
            # The postmaster wakes up, forks a backend for the queued connection.
            sock.settimeout(30)
            assert sock.recv(1) == b"N"
        ok = tcp_psql(pg, "SELECT 1", password="cfg-secret")
        assert (ok.returncode, ok.stdout.strip()) == (0, "1"), ok.stderr
