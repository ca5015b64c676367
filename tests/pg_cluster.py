"""A throwaway PostgreSQL cluster for integration tests.

The test session starts its own server rather than relying on one that may or
may not be running on the machine::

    with running_cluster() as pg:
        dbname = pg.create_database()          # a fresh, empty DB owned by ``cfg``
        dsn = pg.dsn_for(dbname)               # postgresql://cfg:cfg-secret@127.0.0.1:PORT/...

What the cluster looks like:

- ``initdb`` into a fresh directory, superuser ``postgres``, locale ``C``;
- the server listens on 127.0.0.1 only, on a free port picked by binding port
  0 (retried if another process grabs it before postgres does), and on a unix
  socket in a private directory inside the cluster's work directory;
- ``pg_hba.conf``: unix-socket connections are ``trust`` (the socket directory
  is mode 0700, so only the ``postgres`` OS user and root can reach it) and
  every TCP connection from 127.0.0.1 must authenticate with
  ``scram-sha-256``; the application role ``cfg`` / ``cfg-secret`` owns the
  database ``cfgdb``;
- durability is left at the server defaults (``fsync`` and
  ``synchronous_commit`` stay on) because the benchmarks measure real commit
  latency; only ``shared_buffers`` is made small and ``max_connections`` is 200.
  (``initdb --no-sync`` merely skips the final flush of the freshly created
  files: it has no effect on the running server.)

Privileges: PostgreSQL refuses to run as root. When this process is root, the
data and socket directories are chowned to the ``postgres`` OS user and
``initdb``, ``postgres`` and the set-up ``psql`` run as that user (through
``subprocess``'s ``user=``/``group=``/``extra_groups=``, so neither ``runuser``
nor ``su`` is needed); otherwise everything runs as the current user.

The postmaster is started directly (``postgres -D ...``), not through
``pg_ctl start``, so that it is a child of this process: its exit is noticed at
once (a port clash fails in milliseconds, not after a timeout), it is always
reaped, and :meth:`PgCluster.kill`, :meth:`PgCluster.pause` and
:meth:`PgCluster.resume` know exactly which process to signal. Shutdown uses
the server's documented signals (SIGTERM smart, SIGINT fast, SIGQUIT
immediate), which is exactly what ``pg_ctl stop -m ...`` sends.

For a server on another (network-namespace) host, :meth:`PgCluster.start`
takes ``listen`` (the listen address, default 127.0.0.1), ``clients`` (the
CIDRs allowed to log in over TCP, default that address), ``extra_hba`` and
``extra_conf``, and ``prefix``, a command put before every PostgreSQL
program (``["ip", "netns", "exec", "cfgha-d"]``). With a prefix the user
switch happens after it (``setpriv``) and the postmaster's pid is read from
``postmaster.pid``, since the process started may then not be the server;
:meth:`~PgCluster.kill`, :meth:`~PgCluster.stop` and :meth:`~PgCluster.pause`
signal the postmaster itself. ``tests/pg_replica.py`` builds a primary and a
synchronous standby on it.

Set-up SQL runs through the ``psql`` next to ``initdb`` over the unix socket,
so this module needs no Python database driver. Process inspection
(children of the postmaster, stopped/zombie states) reads ``/proc`` and is
therefore Linux-only, which is where the suite runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypedDict

__all__ = [
    "PgCluster",
    "PgClusterError",
    "find_pg_bin",
    "require_pg_bin",
    "running_cluster",
]

#: Programs that must sit together in the directory :func:`find_pg_bin` returns.
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")

HOST = "127.0.0.1"
APP_USER = "cfg"
APP_PASSWORD = "cfg-secret"
APP_DBNAME = "cfgdb"
SUPERUSER = "postgres"

#: How long the server may take to accept connections after being launched.
START_TIMEOUT = 30.0
#: How many fresh ports to try when another process wins the race for one.
PORT_ATTEMPTS = 5
#: Lines of the server log quoted in a start failure.
LOG_TAIL_LINES = 30

ShutdownMode = Literal["smart", "fast", "immediate"]


class _UserArgs(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


_SHUTDOWN_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
_DBNAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class PgClusterError(RuntimeError):
    """The throwaway cluster could not be created, started or stopped."""


# --------------------------------------------------------------------------- #
# Locating the binaries
# --------------------------------------------------------------------------- #


def _has_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED_PROGRAMS)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin`` (``15`` > ``9.6``)."""
    parts = re.findall(r"\d+", bin_dir.parent.name)
    return tuple(int(p) for p in parts)


def find_pg_bin() -> Path | None:
    """Return the directory holding ``initdb``, ``pg_ctl``, ``postgres`` and friends.

    Looked up, in order:

    1. ``$PG_BIN`` when set. An explicit setting that does not hold the
       programs is a mistake worth hearing about, so it raises
       :class:`PgClusterError` rather than silently falling back.
    2. The directory of ``pg_ctl`` found on ``$PATH``, symlinks resolved
       (Debian's ``/usr/local/bin/pg_ctl`` -> ``/usr/lib/postgresql/15/bin``).
       Skipped if that directory lacks the other programs (e.g. Debian's
       ``pg_wrapper`` in ``/usr/bin``).
    3. The highest version under ``/usr/lib/postgresql/*/bin``.

    Returns ``None`` when no PostgreSQL installation is found.
    """
    explicit = os.environ.get("PG_BIN")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not _has_programs(path):
            missing = [n for n in REQUIRED_PROGRAMS if not os.access(path / n, os.X_OK)]
            raise PgClusterError(f"PG_BIN={explicit!r} lacks {', '.join(missing)}")
        return path

    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        path = Path(on_path).resolve().parent
        if _has_programs(path):
            return path

    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_programs(d)]
    if candidates:
        return max(candidates, key=_version_key)
    return None


def require_pg_bin() -> Path:
    """:func:`find_pg_bin` for tests: skip when PostgreSQL is absent, fail under CI.

    A developer machine without PostgreSQL skips the integration tests; CI
    (``$CI`` set, as in ``tests/conftest.py``) must have it, so there the
    absence is a failure rather than a silently green run.
    """
    import pytest

    bin_dir = find_pg_bin()
    if bin_dir is not None:
        return bin_dir
    reason = (
        "PostgreSQL server binaries not found: set PG_BIN to the directory holding "
        "initdb/pg_ctl/postgres, put pg_ctl on PATH, or install them under "
        "/usr/lib/postgresql/<version>/bin"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- #
# Small OS helpers
# --------------------------------------------------------------------------- #


def _free_port(listen: str = HOST) -> int:
    """A TCP port on ``listen`` that was free a moment ago (the kernel's pick).

    An address that does not exist here (it lives in another network
    namespace, reached through a command prefix) cannot be bound: the kernel's
    pick on 127.0.0.1 is taken instead, a guess that the start's retry on
    "Address already in use" corrects.
    """
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((listen, 0))
            return int(sock.getsockname()[1])
    except OSError:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            return int(sock.getsockname()[1])


def _cidr(address: str) -> str:
    """The pg_hba.conf address of exactly one host."""
    return f"{address}/128" if ":" in address else f"{address}/32"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)`` of a process from ``/proc``, or ``None`` if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is neither a zombie nor dead."""
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X", "x")


def _children_of(pid: int, *, zombies: bool = False) -> list[int]:
    """The direct children of ``pid`` (for the postmaster: all server processes).

    Zombies (exited, not yet reaped) are left out unless ``zombies`` is true.
    """
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None and st[1] == pid and (zombies or st[0] not in ("Z", "X", "x")):
            children.append(int(entry.name))
    return children


_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@contextlib.contextmanager
def _subreaper() -> Iterator[bool]:
    """Make this process the reaper of orphaned descendants for the duration.

    When the postmaster is SIGKILLed its children are re-parented to the
    nearest "child subreaper" ancestor, by default PID 1. Some container
    inits never reap, leaving ``postgres <defunct>`` zombies for good; with
    this in effect they come to us instead and :func:`_reap` collects them.
    Yields whether it took effect (Linux only; otherwise a no-op). Any other
    descendant orphaned in this short window would also become our child.
    """
    was_set = ctypes.c_int(0)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        yield False
        return
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was_set), 0, 0, 0) != 0:
        yield False
        return
    if was_set.value:  # already a subreaper: leave it that way
        yield True
        return
    if prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield False
        return
    try:
        yield True
    finally:
        prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _reap(pids: list[int]) -> None:
    """``waitpid`` those of ``pids`` that are our exited children; ignore the rest."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _is_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if _is_alive(p)]
    return alive


def _wait_state(pids: list[int], states: str, timeout: float) -> None:
    """Wait until every live pid in ``pids`` is in one of ``states`` (e.g. ``"T"``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = [_proc_stat(p) for p in pids]
        if all(st is None or st[0] in states or st[0] in "ZXx" for st in stats):
            return
        time.sleep(0.005)
    raise PgClusterError(f"processes {pids} did not reach state {states!r} in {timeout}s")


def _assert_traversable(path: Path, uid: int, gid: int) -> None:
    """Raise unless the OS user ``uid``/``gid`` may traverse every ancestor of ``path``.

    pytest's ``/tmp/pytest-of-root`` is mode 0700, for instance, which would
    leave the ``postgres`` user unable to reach its own data directory.
    """
    for directory in path.parents:
        st = directory.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise PgClusterError(
                f"{directory} (mode {stat.filemode(st.st_mode)}) is not traversable by "
                f"uid {uid}; put the cluster under a world-traversable directory "
                "such as one made by tempfile.mkdtemp(dir='/tmp') and chmod 0o755"
            )


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no server log was written)"
    return "\n".join(text.splitlines()[-lines:])


def _child_env() -> dict[str, str]:
    """The environment for PostgreSQL programs: ours minus any ``PG*`` settings.

    A stray ``PGHOST``/``PGPORT``/``PGDATABASE``/``PGPASSWORD`` from the
    developer's shell must not redirect the set-up ``psql`` to another server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


# --------------------------------------------------------------------------- #
# The cluster
# --------------------------------------------------------------------------- #


class PgCluster:
    """A running (or stopped) throwaway PostgreSQL cluster.

    Create one with :meth:`start` (or :func:`running_cluster`), never with the
    constructor. Everything lives in :attr:`work_dir`: ``data/`` (PGDATA),
    ``sock/`` (unix socket) and ``postgres.log`` (the server's stderr).

    Connection parameters for the application: :attr:`host`, :attr:`port`,
    :attr:`user`, :attr:`password`, :attr:`dbname` and :attr:`dsn`.

    :attr:`host` is the listen address (127.0.0.1 unless ``listen`` says
    otherwise); ``clients`` are the addresses (CIDR) allowed to log in over
    TCP, by default that address alone. ``prefix`` is a command put before
    every PostgreSQL program this class runs (``["ip", "netns", "exec",
    "cfgha-d"]``: the server lives in that network namespace); when root,
    the switch to the ``postgres`` OS user then happens after the prefix, by
    ``setpriv``. The postmaster's pid is then read from ``postmaster.pid``,
    so that :meth:`kill`, :meth:`stop` and :meth:`pause` signal the server
    itself even when the prefix does not ``exec`` it.
    """

    host: str = HOST
    user: str = APP_USER
    password: str = APP_PASSWORD
    dbname: str = APP_DBNAME

    def __init__(
        self,
        *,
        bin_dir: Path,
        work_dir: Path,
        os_user: str | None,
        listen: str = HOST,
        prefix: Sequence[str] = (),
        clients: Sequence[str] = (),
    ) -> None:
        """Prepare the paths; :meth:`start` does the work."""
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.data_dir = work_dir / "data"
        self.socket_dir = work_dir / "sock"
        self.log_path = work_dir / "postgres.log"
        self.port = 0
        self.host = listen
        self.prefix: tuple[str, ...] = tuple(prefix)
        self.clients: tuple[str, ...] = tuple(clients) or (_cidr(listen),)
        #: Extra ``pg_hba.conf`` lines (e.g. replication) and ``postgresql.conf`` text.
        self.extra_hba: tuple[str, ...] = ()
        self.extra_conf = ""
        self._postmaster: int | None = None
        self._os_user = os_user
        self._ids: tuple[int, int] | None = None
        if os_user is not None:
            pw = pwd.getpwnam(os_user)
            self._ids = (pw.pw_uid, pw.pw_gid)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped_pids: list[int] = []

    # ----------------------------------------------------------------- start

    @classmethod
    def start(
        cls,
        base_dir: Path,
        *,
        bin_dir: Path | None = None,
        os_user: str = "postgres",
        listen: str = HOST,
        prefix: Sequence[str] = (),
        clients: Sequence[str] = (),
        extra_hba: Sequence[str] = (),
        extra_conf: str = "",
    ) -> PgCluster:
        """Create a cluster in a new directory under ``base_dir`` and start it.

        ``base_dir`` must exist; when running as root its ancestors must be
        traversable by ``os_user`` (checked, with a clear error). ``os_user``
        is only used when this process is root. ``listen``, ``prefix`` and
        ``clients`` are as for the class; ``extra_hba`` lines go to
        ``pg_hba.conf`` and ``extra_conf`` to ``postgresql.conf``. Returns
        once the server accepts TCP connections and ``cfg``/``cfgdb`` exist.
        On failure the server is stopped, its directory removed, and
        :class:`PgClusterError` carries the last lines of the server log.
        """
        if bin_dir is None:
            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise PgClusterError("no PostgreSQL binaries found (see find_pg_bin)")
        as_user = os_user if os.geteuid() == 0 else None
        if as_user is not None:
            try:
                pwd.getpwnam(as_user)
            except KeyError:
                raise PgClusterError(
                    f"running as root, but there is no OS user {as_user!r} to run postgres as"
                ) from None
        work_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=Path(base_dir).resolve()))
        cluster = cls(
            bin_dir=bin_dir,
            work_dir=work_dir,
            os_user=as_user,
            listen=listen,
            prefix=prefix,
            clients=clients,
        )
        cluster.extra_hba, cluster.extra_conf = tuple(extra_hba), extra_conf
        try:
            cluster._initdb()
            cluster._launch_on_free_port()
            cluster._create_app_role()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _run(
        self,
        args: list[str],
        *,
        timeout: float,
        input_text: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the cluster's OS user (after the prefix); raise on
        failure. ``env`` adds variables (e.g. ``PGPASSWORD``) to the clean environment."""
        result = subprocess.run(
            self._command(args),
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**_child_env(), **(env or {})},
            cwd=self.work_dir,
            timeout=timeout,
            check=False,
            **self._popen_user(),
        )
        if result.returncode != 0:
            raise PgClusterError(
                f"{Path(args[0]).name} exited with {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def _as_os_user(self) -> _UserArgs:
        """``subprocess`` arguments that run a child as the cluster's OS user (if root)."""
        if self._ids is None:
            return {}
        return {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}

    def _popen_user(self) -> _UserArgs:
        """The user switch by ``subprocess``: none with a prefix (``setpriv`` does it after
        the prefix, which may need root, as ``ip netns exec`` does)."""
        return {} if self.prefix else self._as_os_user()

    def _command(self, args: list[str]) -> list[str]:
        """``args`` behind the prefix (and ``setpriv`` to the OS user when root)."""
        if not self.prefix:
            return args
        if self._ids is None:
            return [*self.prefix, *args]
        uid, gid = self._ids
        return [
            *self.prefix,
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--",
            *args,
        ]

    def _make_dirs(self) -> None:
        """The work, data (empty, 0700) and socket directories, owned by the OS user."""
        self.work_dir.chmod(0o755)
        self.data_dir.mkdir(mode=0o700)
        self.socket_dir.mkdir(mode=0o700)
        if len(str(self.socket_dir / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
            raise PgClusterError(f"socket path under {self.socket_dir} is too long")
        if self._ids is not None:
            for d in (self.work_dir, self.data_dir, self.socket_dir):
                os.chown(d, *self._ids)
            _assert_traversable(self.data_dir, *self._ids)

    def _hba_text(self) -> str:
        """``pg_hba.conf``: trust on the socket, SCRAM from each client address."""
        lines = [
            "# Written by tests/pg_cluster.py for a throwaway test cluster.",
            "# TYPE  DATABASE  USER  ADDRESS        METHOD",
            "local   all       all                  trust",
            *(f"host    all       all   {cidr}   scram-sha-256" for cidr in self.clients),
            *self.extra_hba,
        ]
        return "\n".join(lines) + "\n"

    def _conf_text(self) -> str:
        """What this class adds to ``postgresql.conf`` (later lines win)."""
        return (
            "\n# --- tests/pg_cluster.py (port is given on the command line) ---\n"
            f"listen_addresses = '{self.host}'\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n"
            "password_encryption = 'scram-sha-256'\n"
            "max_connections = 200\n"
            "shared_buffers = 16MB\n"
            "# fsync and synchronous_commit stay at their defaults (on): the\n"
            "# benchmarks measure real commit latency.\n"
            f"{self.extra_conf}"
        )

    def _initdb(self) -> None:
        self._make_dirs()
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
        )
        (self.data_dir / "pg_hba.conf").write_text(self._hba_text())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(self._conf_text())

    def _launch_on_free_port(self) -> None:
        """Start the server on a kernel-picked port, retrying if someone else takes it."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._launch(_free_port(self.host))
                return
            except _PortInUse:
                if attempt == PORT_ATTEMPTS:
                    raise PgClusterError(
                        f"no free port after {PORT_ATTEMPTS} attempts:\n{_tail(self.log_path)}"
                    ) from None

    def _launch(self, port: int) -> None:
        """Start the postmaster on ``port`` and wait until it accepts TCP connections."""
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # Its own session: a Ctrl-C or Ctrl-Z at the terminal goes to pytest,
            # whose teardown stops the server, rather than straight to postgres.
            self._proc = subprocess.Popen(
                self._command(
                    [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(port)]
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=self.work_dir,
                start_new_session=True,
                **self._popen_user(),
            )
        self.port = port
        self._stopped_pids = []
        self._postmaster = None if self.prefix else self._proc.pid
        try:
            self._wait_ready(log_offset)
            if self.prefix:
                self._postmaster = self._read_postmaster_pid()
        except BaseException:
            self._terminate_after_failed_start()
            raise

    def _wait_ready(self, log_offset: int) -> None:
        """Poll ``pg_isready`` over TCP until the server accepts connections (30 s max)."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        isready = [
            str(self.bin_dir / "pg_isready"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--timeout",
            "2",
            "--quiet",
        ]
        while True:
            if self._proc.poll() is not None:
                with self.log_path.open("rb") as log:
                    log.seek(log_offset)
                    this_attempt = log.read().decode(errors="replace")
                if "Address already in use" in this_attempt:
                    raise _PortInUse(self.port)
                raise PgClusterError(
                    f"postgres exited with {self._proc.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            # 0: accepting; 1: rejecting (still starting up / in recovery); 2: no response.
            rc = subprocess.run(
                self._command(isready),
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=10,
                **self._popen_user(),
            ).returncode
            if rc == 0:
                return
            if time.monotonic() > deadline:
                raise PgClusterError(
                    f"postgres did not accept connections on {self.host}:{self.port} within "
                    f"{START_TIMEOUT:.0f}s; last lines of {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _read_postmaster_pid(self) -> int:
        """The postmaster's pid, from the first line of ``postmaster.pid`` (a prefix may
        have forked on the way, so the process started is not always the server)."""
        assert self._proc is not None
        return self._read_pid_file_quietly() or self._proc.pid

    def _server_pid(self) -> int:
        """The pid to signal: the postmaster (known once started), else the process."""
        assert self._proc is not None
        return self._postmaster if self._postmaster is not None else self._proc.pid

    def _terminate_after_failed_start(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            pids = {proc.pid, self._read_pid_file_quietly() or proc.pid}
            children = [c for p in pids for c in _children_of(p)]
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            for pid in children:
                _signal(pid, signal.SIGKILL)
            _wait_gone(children, 10)
        proc.wait()
        self._postmaster = None

    def _read_pid_file_quietly(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _is_alive(pid) else None

    def _create_app_role(self) -> None:
        self.psql(
            f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';\n"
            f"CREATE DATABASE {APP_DBNAME} OWNER {APP_USER};\n"
        )

    # ----------------------------------------------------------------- use

    @property
    def dsn(self) -> str:
        """``postgresql://cfg:cfg-secret@127.0.0.1:PORT/cfgdb``."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        """The application's DSN for another database of this cluster."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (or is paused), else ``None``."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._server_pid()

    @property
    def running(self) -> bool:
        """True while the postmaster process exists (paused counts as running)."""
        return self.pid is not None

    def server_pids(self) -> list[int]:
        """The postmaster followed by its live children; empty when stopped."""
        pid = self.pid
        return [] if pid is None else [pid, *_children_of(pid)]

    def psql(self, sql: str, *, dbname: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the unix socket; return psql's stdout.

        The SQL is fed on stdin, so each statement runs in its own transaction
        (``CREATE DATABASE`` is allowed); ``-X`` (no psqlrc), ``ON_ERROR_STOP``,
        unaligned tuples-only output.
        """
        result = self._run(
            [
                str(self.bin_dir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                str(self.socket_dir),
                "--port",
                str(self.port),
                "--username",
                SUPERUSER,
                "--dbname",
                dbname,
            ],
            input_text=sql,
            timeout=60,
        )
        return result.stdout

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database owned by ``cfg`` and return its name.

        ``name`` must be a plain identifier (letters, digits, ``_``; at most
        63 characters); by default a unique ``t_<hex>`` name is made up.
        """
        if name is None:
            name = f"t_{secrets.token_hex(6)}"
        if not _DBNAME_RE.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f'CREATE DATABASE "{name}" OWNER {APP_USER};\n')
        return name

    # ----------------------------------------------------------------- lifecycle

    def stop(self, mode: ShutdownMode = "fast", timeout: float = 60.0) -> None:
        """Shut the server down and wait until every server process is gone.

        ``mode`` is as for ``pg_ctl stop -m``: ``smart`` waits for clients to
        disconnect, ``fast`` (default) rolls back and disconnects them,
        ``immediate`` quits without a checkpoint (crash recovery at next
        start). A paused server is resumed first. If the server is not gone
        after ``timeout`` seconds, it is SIGKILLed and :class:`PgClusterError`
        raised. Stopping a stopped cluster does nothing.
        """
        if mode not in _SHUTDOWN_SIGNALS:
            raise ValueError(f"mode must be smart, fast or immediate, not {mode!r}")
        proc = self._proc
        if proc is None:
            return
        if self._stopped_pids:
            self.resume()
        children: list[int] = []
        if proc.poll() is None:  # never signal a reaped pid: it may have been reused
            server = self._server_pid()
            children = _children_of(server)
            _signal(server, _SHUTDOWN_SIGNALS[mode])
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(children=True)
            raise PgClusterError(
                f"{mode} shutdown took over {timeout}s; killed. Last lines of "
                f"{self.log_path}:\n{_tail(self.log_path)}"
            ) from None
        self._proc = self._postmaster = None
        leftover = _wait_gone(children, 10)
        if leftover:  # never expected: the postmaster waits for its children
            for pid in leftover:
                _signal(pid, signal.SIGKILL)
            _wait_gone(leftover, 10)

    def kill(self, *, children: bool = False) -> None:
        """SIGKILL the postmaster, as a crash would; for fault tests.

        With ``children=False`` (default) only the postmaster is killed; its
        backends notice the postmaster's death and exit on their own (clients
        then see "terminating connection due to unexpected postmaster exit").
        With ``children=True`` every server process is SIGKILLed at once, so
        clients see their connections simply drop. Either way this returns
        once no server process is left, so :meth:`restart` (which then runs
        crash recovery) can follow.
        """
        proc = self._proc
        if proc is None:
            return
        with _subreaper():
            kids: list[int] = []
            if proc.poll() is None:  # never signal a reaped pid: it may have been reused
                # Freeze it first so that it forks nothing after the snapshot.
                server = self._server_pid()
                _signal(server, signal.SIGSTOP)
                _wait_state([server], "Tt", 5)
                kids = _children_of(server, zombies=True)
                _signal(server, signal.SIGKILL)
            if children:
                for pid in kids:
                    _signal(pid, signal.SIGKILL)
            # Paused children would never notice anything: let them run (and die).
            for pid in self._stopped_pids:
                _signal(pid, signal.SIGCONT)
            self._stopped_pids = []
            proc.wait()
            self._proc = self._postmaster = None
            leftover = _wait_gone(kids, 10)
            for pid in leftover:  # e.g. a backend busy in a long query
                _signal(pid, signal.SIGKILL)
            _wait_gone(leftover, 10)
            _reap(kids)

    def restart(self) -> None:
        """Stop the server (fast) if it runs, then start it again on the same port.

        After :meth:`kill` this performs crash recovery. Raises
        :class:`PgClusterError` if the server does not come back (for instance
        because another process took the port meanwhile).
        """
        self.stop("fast")
        try:
            self._launch(self.port)
        except _PortInUse:
            raise PgClusterError(f"port {self.port} was taken while the server was down") from None

    def pause(self) -> None:
        """SIGSTOP the postmaster and all its children: the server stalls.

        The kernel still completes TCP handshakes on the listen socket, so new
        clients connect and then hear nothing, and established connections get
        no replies, which is what a hung database host looks like. Returns once
        every process is actually stopped.
        """
        pid = self.pid
        if pid is None:
            raise PgClusterError("cannot pause: the server is not running")
        if self._stopped_pids:
            return
        _signal(pid, signal.SIGSTOP)  # first, so it forks no new children meanwhile
        _wait_state([pid], "Tt", 5)
        kids = _children_of(pid)
        for child in kids:
            _signal(child, signal.SIGSTOP)
        self._stopped_pids = [pid, *kids]
        _wait_state(self._stopped_pids, "Tt", 5)

    def resume(self) -> None:
        """SIGCONT everything :meth:`pause` stopped (children first, postmaster last)."""
        stopped, self._stopped_pids = self._stopped_pids, []
        for pid in reversed(stopped):
            _signal(pid, signal.SIGCONT)

    def destroy(self) -> None:
        """Stop the server (immediately if a fast stop fails) and delete :attr:`work_dir`."""
        try:
            with contextlib.suppress(PgClusterError):  # stop() has killed it then
                self.stop("fast")
        finally:
            self.kill(children=True)  # no-op unless something is still running
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        state = "paused" if self._stopped_pids else "running" if self.running else "stopped"
        return f"<PgCluster {self.host}:{self.port} {state} {self.work_dir}>"


class _PortInUse(PgClusterError):
    """postgres could not bind its port: someone else took it after we picked it."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} already in use")
        self.port = port


@contextlib.contextmanager
def running_cluster(
    base_dir: Path | None = None, *, bin_dir: Path | None = None
) -> Iterator[PgCluster]:
    """Start a :class:`PgCluster`; on exit stop it and delete its files.

    Without ``base_dir`` a private directory is made with
    ``tempfile.mkdtemp`` under ``/tmp`` (mode 0755 so that the ``postgres``
    user can traverse it) and removed afterwards. pytest's own ``tmp_path``
    lives under ``/tmp/pytest-of-root`` (mode 0700), which is why this does
    not use it.
    """
    own_base = base_dir is None
    if base_dir is None:
        parent = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        base_dir = Path(tempfile.mkdtemp(prefix="pgcluster-", dir=parent))
        base_dir.chmod(0o755)
    try:
        cluster = PgCluster.start(base_dir, bin_dir=bin_dir)
        try:
            yield cluster
        finally:
            cluster.destroy()
    finally:
        if own_base:
            shutil.rmtree(base_dir, ignore_errors=True)
