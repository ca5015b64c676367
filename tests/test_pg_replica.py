"""The replicated PostgreSQL of ``tests/pg_replica.py`` does what it says.

A primary (behind a command prefix that forks) and a synchronous standby: a
row committed on the primary is on the standby; after a SIGKILL of the primary
(every one of its processes, found through ``postmaster.pid``) and the
standby's promotion, the standby is writable and has the row; teardown leaves
no process and no file.
Checked with ``psql`` over TCP as the application role. Skipped without
PostgreSQL, except under CI.
"""

from __future__ import annotations

import pytest

from tests.pg_cluster import _is_alive, require_pg_bin
from tests.pg_replica import STANDBY_NAME, replicated_cluster

from .test_pg_cluster import tcp_psql

pytestmark = pytest.mark.integration

#: A prefix that forks (as ``sudo`` or a shell wrapper would) and stays as the
#: server's parent; the primary runs behind it, the standby without one.
FORKING_PREFIX = ["bash", "-c", '"$@"; exit $?', "prefix"]


def test_a_committed_row_survives_the_primary_s_death() -> None:
    pg_bin = require_pg_bin()
    with replicated_cluster(bin_dir=pg_bin, primary_prefix=FORKING_PREFIX) as rc:
        primary, standby = rc.primary, rc.standby
        # With a prefix the process started is not the postmaster: it is found anyway.
        assert primary._proc is not None
        assert primary.pid != primary._proc.pid
        assert primary.pid == int((primary.data_dir / "postmaster.pid").read_text().split()[0])
        assert rc.hosts == f"127.0.0.1:{primary.port}, 127.0.0.1:{standby.port}"
        # Commits wait for the standby: it is synchronous, and the primary says so.
        assert rc.sync_state() == "sync"
        assert primary.psql("SHOW synchronous_standby_names").strip() == STANDBY_NAME
        assert standby.psql("SELECT pg_is_in_recovery()").strip() == "t"
        db = rc.create_database()
        wrote = tcp_psql(
            primary,
            "CREATE TABLE t (v int); INSERT INTO t VALUES (42)",
            password=rc.password,
            dbname=db,
        )
        assert wrote.returncode == 0, wrote.stderr
        rc.wait_replayed()
        read = tcp_psql(standby, "SELECT v FROM t", password=rc.password, dbname=db)
        assert (read.returncode, read.stdout.strip()) == (0, "42"), read.stderr
        # The standby refuses writes while it is one.
        refused = tcp_psql(standby, "INSERT INTO t VALUES (1)", password=rc.password, dbname=db)
        assert "read-only transaction" in refused.stderr
        # The primary crashes: every one of its processes is gone at once.
        pids = primary.server_pids()
        rc.kill_primary()
        assert [p for p in pids if _is_alive(p)] == []
        rc.promote_standby()
        assert rc.writable is standby
        wrote = tcp_psql(
            standby,
            "INSERT INTO t VALUES (43); SELECT sum(v) FROM t",
            password=rc.password,
            dbname=db,
        )
        # Its commits no longer wait for a standby (it has none): this returns.
        assert (wrote.returncode, wrote.stdout.strip()) == (0, "85"), wrote.stderr
        standby_pids = standby.server_pids()
        dirs = [primary.work_dir, standby.work_dir]
    assert [p for p in standby_pids if _is_alive(p)] == []
    assert not any(d.exists() for d in dirs)
