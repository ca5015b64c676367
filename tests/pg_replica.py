"""A replicated PostgreSQL for tests and benchmarks: a primary and a synchronous standby.

Built on :mod:`tests.pg_cluster`::

    with replicated_cluster() as rc:
        dbname = rc.create_database()      # on the primary, streamed to the standby
        section = f"host = {rc.hosts}"     # "127.0.0.1:P1, 127.0.0.1:P2"
        rc.kill_primary()                  # SIGKILL of the postmaster and its children
        rc.promote_standby()               # pg_promote(), returns once writable

What it looks like:

- the primary is a :class:`~tests.pg_cluster.PgCluster` (``initdb``, role
  ``cfg``, database ``cfgdb``) with a replication role ``replicator``
  allowed in ``pg_hba.conf`` from the standby's address;
- the standby is a ``pg_basebackup`` of it (``--wal-method=stream``, a fast
  checkpoint), a hot standby with ``standby.signal`` and a
  ``primary_conninfo`` naming it ``application_name = standby1``, streaming
  from the primary; its own ``pg_hba.conf`` and listen address;
- once it streams, the primary gets ``synchronous_standby_names =
  'standby1'`` and this returns only when ``pg_stat_replication`` says
  ``sync``: from then on every commit waits for the standby.

``synchronous_commit`` is ``on`` (the default; what Patroni's synchronous
mode uses): a commit returns once the standby has *flushed* its WAL to disk,
so a commit acknowledged to the client survives the loss of the primary; a
promotion replays all the flushed WAL before the new primary opens for
writes, so nothing acknowledged is missing after a failover. ``remote_apply``
(wait until the standby has also *applied* it, so that a read on the standby
sees it at once) costs a replay per commit and is only needed to read
from the standby, which the Configuration Servers never do (they connect to
the writable server only); pass ``synchronous_commit="remote_apply"`` to have
it. The standby itself has ``synchronous_standby_names = ''``: once promoted
it has no standby, and its commits must not wait for one that will never come.

Each server takes its listen address (default 127.0.0.1) and a command prefix
that runs its programs (``["ip", "netns", "exec", "cfgha-d"]``: each in its
network namespace); ``clients`` are the addresses (CIDR) the application may
log in from. The postmaster's pid is read from ``postmaster.pid``, so a kill
finds the server even when the prefix forks. Teardown always stops both and
removes every file, also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from .pg_cluster import PgCluster, PgClusterError, _cidr, find_pg_bin

__all__ = ["ReplicatedCluster", "replicated_cluster"]

REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "replicator-secret"
STANDBY_NAME = "standby1"
#: How long the standby may take to stream, to become synchronous, to be promoted.
SYNC_TIMEOUT = 30.0

SyncCommit = Literal["on", "remote_apply", "remote_write"]


class ReplicatedCluster:
    """A primary and its synchronous standby (see module docstring).

    :attr:`primary` and :attr:`standby` stay the servers they were at the
    start; after :meth:`promote_standby` the writable one is :attr:`standby`
    (:attr:`writable` names whichever is).
    """

    def __init__(self, primary: PgCluster, standby: PgCluster) -> None:
        """Take the two running servers (made by :func:`replicated_cluster`)."""
        self.primary = primary
        self.standby = standby
        self.writable: PgCluster = primary

    @property
    def hosts(self) -> str:
        """The database section's ``host`` value: ``primary:port, standby:port``."""
        return ", ".join(f"{_host(pg.host)}:{pg.port}" for pg in (self.primary, self.standby))

    @property
    def user(self) -> str:
        """The application role."""
        return self.primary.user

    @property
    def password(self) -> str:
        """The application role's password."""
        return self.primary.password

    def create_database(self, name: str | None = None) -> str:
        """A fresh database owned by ``cfg`` on the writable server; returns once the
        standby has it too (a commit waits for its flush, not for its replay)."""
        name = self.writable.create_database(name)
        if self.writable is self.primary:
            self.wait_replayed()
        return name

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and all its children at once (a crash)."""
        self.primary.kill(children=True)

    def promote_standby(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Promote the standby (``pg_promote``) and return once it accepts writes."""
        done = self.standby.psql(
            f"SELECT pg_promote(wait => true, wait_seconds => {int(timeout)})"
        ).strip()
        if done != "t":
            raise PgClusterError(f"pg_promote did not finish within {timeout:g} s")
        _until(
            lambda: self.standby.psql("SHOW transaction_read_only").strip() == "off",
            timeout,
            "the promoted standby to accept writes",
        )
        self.writable = self.standby

    def wait_replayed(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        lsn = self.primary.psql("SELECT pg_current_wal_lsn()").strip()
        _until(
            lambda: (
                self.standby.psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn").strip()
                == "t"
            ),
            timeout,
            f"the standby to replay up to {lsn}",
        )

    def sync_state(self) -> str:
        """The standby's ``sync_state`` in the primary's ``pg_stat_replication`` ('' if none)."""
        return self.primary.psql(
            "SELECT sync_state FROM pg_stat_replication "
            f"WHERE application_name = '{STANDBY_NAME}' AND state = 'streaming'"
        ).strip()

    def destroy(self) -> None:
        """Stop both servers and remove their files (each even if the other fails)."""
        try:
            self.standby.destroy()
        finally:
            self.primary.destroy()


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _until(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` every 20 ms until true; PgClusterError after ``timeout``."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise PgClusterError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _start_standby(
    primary: PgCluster,
    base_dir: Path,
    *,
    listen: str,
    prefix: Sequence[str],
    clients: Sequence[str],
) -> PgCluster:
    """A hot standby of ``primary``, streaming from it, running."""
    work_dir = Path(tempfile.mkdtemp(prefix="pg-standby-", dir=base_dir.resolve()))
    standby = PgCluster(
        bin_dir=primary.bin_dir,
        work_dir=work_dir,
        os_user=primary._os_user,
        listen=listen,
        prefix=prefix,
        clients=clients,
    )
    try:
        standby._make_dirs()
        standby._run(
            [
                str(standby.bin_dir / "pg_basebackup"),
                "--pgdata",
                str(standby.data_dir),
                "--host",
                primary.host,
                "--port",
                str(primary.port),
                "--username",
                REPLICATION_USER,
                "--no-password",
                "--wal-method=fetch",
                "--checkpoint=fast",
                "--no-sync",
                "--no-manifest",
            ],
            timeout=120,
            env={"PGPASSWORD": REPLICATION_PASSWORD},
        )
        (standby.data_dir / "standby.signal").touch()
        if standby._ids is not None:
            os.chown(standby.data_dir / "standby.signal", *standby._ids)
        standby.extra_hba = primary.extra_hba
        (standby.data_dir / "pg_hba.conf").write_text(standby._hba_text())
        standby.extra_conf = (
            f"primary_conninfo = 'host={primary.host} port={primary.port} "
            f"user={REPLICATION_USER} password={REPLICATION_PASSWORD} "
            f"application_name={STANDBY_NAME}'\n"
            "hot_standby = on\n"
            "# Once promoted it has no standby: its commits must not wait for one.\n"
            "synchronous_standby_names = ''\n"
        )
        with (standby.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(standby._conf_text())
        standby._launch_on_free_port()
    except BaseException:
        standby.destroy()
        raise
    return standby


@contextlib.contextmanager
def replicated_cluster(
    base_dir: Path | None = None,
    *,
    bin_dir: Path | None = None,
    primary_listen: str = "127.0.0.1",
    standby_listen: str = "127.0.0.1",
    primary_prefix: Sequence[str] = (),
    standby_prefix: Sequence[str] = (),
    clients: Sequence[str] = (),
    synchronous_commit: SyncCommit = "on",
) -> Iterator[ReplicatedCluster]:
    """Start a primary and a synchronous standby; on exit stop both and delete their files.

    ``clients``: the addresses (CIDR) the application may log in from over
    TCP, on both servers; by default each server's own listen address and
    the other's. Without ``base_dir`` a private 0755 directory under ``/tmp``
    is made and removed afterwards (as :func:`~tests.pg_cluster.running_cluster`).
    """
    own_base = base_dir is None
    if base_dir is None:
        parent = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        base_dir = Path(tempfile.mkdtemp(prefix="pgreplica-", dir=parent))
        base_dir.chmod(0o755)
    if bin_dir is None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PgClusterError("no PostgreSQL binaries found (see find_pg_bin)")
    allowed = tuple(clients) or tuple(dict.fromkeys((_cidr(primary_listen), _cidr(standby_listen))))
    try:
        primary = PgCluster.start(
            base_dir,
            bin_dir=bin_dir,
            listen=primary_listen,
            prefix=primary_prefix,
            clients=allowed,
            extra_hba=[
                f"host    replication  {REPLICATION_USER}  {_cidr(standby_listen)}  scram-sha-256"
            ],
            extra_conf=(
                "wal_level = replica\n"
                "max_wal_senders = 5\n"
                f"synchronous_commit = {synchronous_commit}\n"
                # A standby cut off (a partition test) is noticed in 5 s, not 60; no
                # replication slot is kept, so a standby gone keeps no WAL around.
                "wal_sender_timeout = 5s\n"
            ),
        )
        try:
            primary.psql(
                f"CREATE ROLE {REPLICATION_USER} REPLICATION LOGIN "
                f"PASSWORD '{REPLICATION_PASSWORD}';\n"
            )
            standby = _start_standby(
                primary, base_dir, listen=standby_listen, prefix=standby_prefix, clients=allowed
            )
        except BaseException:
            primary.destroy()
            raise
        rc = ReplicatedCluster(primary, standby)
        try:
            _until(lambda: rc.sync_state() != "", SYNC_TIMEOUT, "the standby to stream")
            primary.psql(
                f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}';\n"
                "SELECT pg_reload_conf();\n"
            )
            _until(lambda: rc.sync_state() == "sync", SYNC_TIMEOUT, "the standby to be synchronous")
            yield rc
        finally:
            rc.destroy()
    finally:
        if own_base:
            shutil.rmtree(base_dir, ignore_errors=True)
