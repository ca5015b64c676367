"""A multi-host test bed built from Linux network namespaces, and its faults.

Usage (as root, which CI is)::

    with TestBed() as bed:                       # hosts A, B, C, D, E
        server = bed.spawn("B", ["python3", "-m", "http.server", "-b", bed.address("B")])
        bed.run("A", ["ip", "route"])            # a quick command, output captured
        bed.partition("A", "B")                  # A->B and B->A dropped (iptables)
        bed.partition("A", "C", one_way=True)    # only A->C dropped
        bed.heal("A", "B"); bed.heal_all()
        bed.link_down("A"); bed.link_up("A")     # the host's veth, admin down/up
        bed.crash("A")                           # silent: veth gone, every process SIGKILLed
        bed.recover("A")                         # a fresh host A (new namespace, same address)
        bed.pause(server.pid); bed.resume(server.pid)
        sock = bed.socket("A")                   # a socket living in host A's namespace
        stream = trio.socket.from_stdlib_socket(sock)   # ... usable from trio too
        bed.command("D", ["postgres", ...], user="postgres")  # an argv prefix for others
        bed.spawn("A", argv, name="confserv-A"); bed.pid_of("confserv-A")  # named processes

What it builds: one network namespace per host, named ``cfgha-<pid>-<run>-<host>``
(unique per process and per bed, so parallel or leftover runs never clash), with
``lo`` up and one veth ``eth0`` holding one address of the benchmarking range
198.18.0.0/24 (RFC 2544); the veth's other end is a port of a bridge that lives in
its own "switch" namespace ``cfgha-<pid>-<run>-sw``. Nothing is created in, or
attached to, the root namespace; no namespace has a default route (a host reaches
the other hosts and its own loopback, nothing else); IPv6 is disabled inside, so
each host has exactly one address besides 127.0.0.1.

Faults use the kernel's own tools: a partition is an ``iptables ... INPUT -s X -j
DROP`` in the receiving host (the sender sees a silent loss, as on a real network,
not the EPERM a rule in OUTPUT would give it); ``link_down`` sets the host's veth
down; ``crash`` first SIGSTOPs every process of the namespace (``ip netns pids``),
deletes the host's veth (so no FIN or RST leaves the dying host) and SIGKILLs them
all; ``recover`` reboots the host: a fresh namespace with the same name, address and
partition rules (and MAC), no process and no kernel socket state of the old one.

Teardown (``__exit__``, also after an exception, Ctrl-C or SIGTERM, which acts as
Ctrl-C while a bed lives, plus an ``atexit`` backstop) kills every process of the
namespaces, reaps what :meth:`TestBed.spawn` started and deletes every namespace:
the veths, the bridge and the iptables rules go with them. :func:`sweep_leftovers`
(called on entry) removes the namespaces of earlier runs whose owning process is
gone.

:class:`NetnsUnavailable` is raised when namespaces cannot be made here (not root,
no ``ip``, no permission, no iptables); ``tests/multihost/conftest.py`` skips on it,
except under CI where it fails.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from tests.multihost.tools import (
    PREFIX,
    BedCommandError,
    NetnsUnavailable,
    disable_ipv6,
    executable,
    ignore_sigint,
    in_namespace,
    ip,
    ip_error,
    iptables,
    iptables_command,
    kill_all,
    netns_pids,
    reap,
    sweep_leftovers,
    track_live,
    untrack_live,
    wait_link_ready,
    wait_stopped,
)

__all__ = [
    "NETWORK",
    "PREFIX",
    "BedCommandError",
    "NetnsUnavailable",
    "TestBed",
    "sweep_leftovers",
]

#: The addresses of the bed (RFC 2544 benchmarking range); host i gets .(i + 1).
NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
DEFAULT_HOSTS = ("A", "B", "C", "D", "E")
#: How long :meth:`TestBed.spawn` waits for the new process to enter its host.
SPAWN_TIMEOUT = 10.0

_HOST_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,9}")
_run_counter = iter(range(1, 1 << 30))


class TestBed:
    """Hosts as network namespaces joined by one bridge; see the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(self, hosts: Sequence[str] = DEFAULT_HOSTS, *, iptables: bool = True) -> None:
        """Describe the bed; nothing is created before ``__enter__``.

        ``iptables=False`` builds a bed without partitions (no iptables needed).
        """
        if not hosts or len(hosts) > 200:
            raise ValueError("a test bed needs between 1 and 200 hosts")
        keys = [h.lower() for h in hosts]
        bad = [h for h in hosts if not _HOST_NAME.fullmatch(h)]
        if bad or len(set(keys)) != len(keys) or "sw" in keys:
            raise ValueError(f"host names must be distinct letters/digits, not 'sw': {hosts!r}")
        self.hosts: tuple[str, ...] = tuple(hosts)
        self.prefix = f"{PREFIX}-{os.getpid()}-{next(_run_counter)}"
        self.switch = f"{self.prefix}-sw"
        self._iptables_wanted = iptables
        self._iptables: list[str] = []
        self._address = {h: str(NETWORK[i + 1]) for i, h in enumerate(self.hosts)}
        self._port = {h: f"port{i}" for i, h in enumerate(self.hosts)}
        self._made: list[str] = []
        self._spawned: list[subprocess.Popen[Any]] = []
        self._names: dict[str, int] = {}
        self._rules: set[tuple[str, str]] = set()  # (receiving host, sending host)
        self._down: set[str] = set()
        self._crashed: set[str] = set()
        self._closed = False

    # ------------------------------------------------------------------ build

    def __enter__(self) -> TestBed:
        """Build the bed; on any failure, remove what was made and re-raise."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (this process is not root)")
        sweep_leftovers()
        track_live(self)
        try:
            self._add_namespace(self.switch)
            ip("link", "add", "br0", "type", "bridge", ns=self.switch)
            ip("link", "set", "br0", "up", ns=self.switch)
            if self._iptables_wanted:
                self._iptables = iptables_command(self.switch)
            for host in self.hosts:
                self._build_host(host)
        except BaseException:
            self.close()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        self._made.append(name)
        out = ip_error("netns", "add", name)
        if out:
            self._made.remove(name)
            if "ermission" in out or "not permitted" in out:
                raise NetnsUnavailable(f"cannot create network namespace {name}: {out}")
            raise BedCommandError(f"ip netns add {name}: {out}")
        in_namespace(name, disable_ipv6)

    def _build_host(self, host: str) -> None:
        ns = self.namespace(host)
        self._add_namespace(ns)
        port = self._port[host]
        index = self.hosts.index(host) + 1
        ip(
            *("link", "add", port, "address", f"02:cf:01:00:{index >> 8:02x}:{index & 255:02x}"),
            *("type", "veth", "peer", "name", "eth0", "netns", ns),
            *("address", f"02:cf:00:00:{index >> 8:02x}:{index & 255:02x}"),
            ns=self.switch,
        )
        ip("link", "set", port, "master", "br0", "up", ns=self.switch)
        ip("link", "set", "lo", "up", ns=ns)
        ip("addr", "add", f"{self._address[host]}/{NETWORK.prefixlen}", "dev", "eth0", ns=ns)
        if host not in self._down:
            ip("link", "set", "eth0", "up", ns=ns)
            wait_link_ready(self.switch, port, ns, SPAWN_TIMEOUT)
        for receiver, sender in sorted(self._rules):
            if receiver == host:
                self._iptables_rule("-A", receiver, sender)

    # --------------------------------------------------------------- queries

    def namespace(self, host: str) -> str:
        """The network namespace name of ``host``."""
        self._check_host(host)
        return f"{self.prefix}-{host.lower()}"

    def address(self, host: str) -> str:
        """The IPv4 address of ``host`` (dotted quad)."""
        self._check_host(host)
        return self._address[host]

    def pids(self, host: str) -> list[int]:
        """Every process of ``host``'s namespace now (``ip netns pids``)."""
        return netns_pids(self.namespace(host))

    def _check_host(self, host: str) -> None:
        if host not in self._address:
            raise KeyError(f"no host {host!r} in this bed (hosts: {', '.join(self.hosts)})")

    # ------------------------------------------------------------ processes

    def command(self, host: str, argv: Sequence[str], *, user: str | None = None) -> list[str]:
        """``argv`` prefixed to run in ``host`` (``ip netns exec``), as ``user`` if given.

        Use it where another helper takes a command prefix; the ``user`` part uses
        ``setpriv`` (``Popen(user=...)`` would drop root before ``ip`` can join).
        """
        prefix = ["ip", "netns", "exec", self.namespace(host)]
        if user is not None:
            entry = pwd.getpwnam(user)
            prefix += ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}"]
            prefix += ["--init-groups", "--"]
        return [*prefix, *argv]

    def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        name: str | None = None,
        **popen_kwargs: Any,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host``; its pid is the program's own (``ip`` execs it).

        Returns once the program runs inside the host (``ip``, and ``setpriv`` for
        ``user``, have exec'd it), so a fault that follows at once hits it. ``name``
        registers the pid for :meth:`pid_of` (the faults' named processes). The bed
        reaps and closes every process it spawned at teardown.
        """
        self._check_open()
        proc: subprocess.Popen[Any] = subprocess.Popen(
            self.command(host, argv, user=user), **popen_kwargs
        )
        self._spawned.append(proc)
        launchers = {
            os.path.realpath(p) for p in (shutil.which("ip"), shutil.which("setpriv")) if p
        }
        launchers.discard(os.path.realpath(shutil.which(argv[0]) or argv[0]))
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while proc.poll() is None and not self._started(proc.pid, host, launchers):
            if time.monotonic() > deadline:
                raise BedCommandError(f"{argv[0]} did not start in {host} in {SPAWN_TIMEOUT:g} s")
            time.sleep(0.001)
        if name is not None:
            self.register(name, proc.pid)
        return proc

    def _started(self, pid: int, host: str, launchers: set[str]) -> bool:
        """Whether ``pid`` is in ``host`` and no longer one of the launchers (ip, setpriv)."""
        return executable(pid) not in launchers and self.host_of(pid) == host

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        timeout: float = 10.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a quick command in ``host``; text output captured; raise on failure if ``check``."""
        self._check_open()
        done = subprocess.run(
            self.command(host, argv, user=user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            line = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise BedCommandError(f"{' '.join(argv)} in {host} exited {done.returncode}: {line[0]}")
        return done

    def socket(
        self,
        host: str,
        family: socket.AddressFamily = socket.AF_INET,
        kind: socket.SocketKind = socket.SOCK_STREAM,
    ) -> socket.socket:
        """A new socket that lives in ``host``'s namespace (for in-process tests)."""
        self._check_open()
        return in_namespace(self.namespace(host), lambda: socket.socket(family, kind))

    def register(self, name: str, pid: int) -> None:
        """Name a process (e.g. ``"confserv-A"``) so faults can refer to it."""
        self._names[name] = pid

    def pid_of(self, name: str) -> int:
        """The pid registered under ``name``."""
        try:
            return self._names[name]
        except KeyError:
            raise KeyError(f"no process registered as {name!r}") from None

    def host_of(self, pid: int) -> str | None:
        """The host whose namespace ``pid`` lives in now, or ``None`` (gone, or not ours).

        A host recovered after a crash is a new namespace: its old pids are not in it.
        """
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            return None
        for host in self.hosts:
            try:
                ns = os.stat(f"/run/netns/{self.namespace(host)}")
            except OSError:
                continue
            if (ns.st_dev, ns.st_ino) == (st.st_dev, st.st_ino):
                return host
        return None

    def pause(self, pid: int) -> None:
        """SIGSTOP ``pid`` (a process of this bed); returns once it is stopped."""
        self.kill(pid, signal.SIGSTOP)
        wait_stopped(pid, SPAWN_TIMEOUT)

    def resume(self, pid: int) -> None:
        """SIGCONT ``pid`` (a process of this bed)."""
        self.kill(pid, signal.SIGCONT)

    def kill(self, pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL by default) to ``pid``, which must be a process of this bed.

        Raises ProcessLookupError for any other pid, so that a stale pid reused by
        an unrelated process of the machine is never signalled.
        """
        if self.host_of(pid) is None:
            raise ProcessLookupError(f"pid {pid} is not a process of this test bed")
        os.kill(pid, sig)

    # ---------------------------------------------------------------- faults

    def partition(self, a: str, b: str, *, one_way: bool = False) -> None:
        """Drop a->b, and b->a unless ``one_way`` (iptables INPUT DROP at the receiver).

        One way and TCP: with only a->b dropped, a cannot connect to b (its SYN is
        lost) and b cannot connect to a either (a's SYN-ACK is lost); datagrams b->a
        arrive.
        """
        pairs = [(b, a)] if one_way else [(b, a), (a, b)]
        for receiver, sender in pairs:
            self._need_iptables()
            self._check_pair(receiver, sender)
            if (receiver, sender) not in self._rules:
                self._iptables_rule("-A", receiver, sender)
                self._rules.add((receiver, sender))

    def isolate(self, host: str) -> None:
        """Partition ``host`` from every other host, both ways."""
        for other in self.hosts:
            if other != host:
                self.partition(host, other)

    def heal(self, a: str, b: str, *, one_way: bool = False) -> None:
        """Undo :meth:`partition` (a->b only with ``one_way``; both directions otherwise)."""
        pairs = [(b, a)] if one_way else [(b, a), (a, b)]
        for receiver, sender in pairs:
            self._check_pair(receiver, sender)
            if (receiver, sender) in self._rules:
                self._iptables_rule("-D", receiver, sender)
                self._rules.discard((receiver, sender))

    def heal_all(self) -> None:
        """Remove every partition rule."""
        for receiver, sender in sorted(self._rules):
            self._iptables_rule("-D", receiver, sender)
        self._rules.clear()

    def partitions(self) -> set[tuple[str, str]]:
        """The dropped directions now, as ``(sender, receiver)`` pairs."""
        return {(sender, receiver) for receiver, sender in self._rules}

    def link_down(self, host: str) -> None:
        """Set ``host``'s veth down (it loses its route; others' packets to it are lost)."""
        self._check_host(host)
        self._down.add(host)
        if host not in self._crashed:
            ip("link", "set", "eth0", "down", ns=self.namespace(host))

    def link_up(self, host: str) -> None:
        """Set ``host``'s veth up again; returns once its switch port forwards again."""
        self._check_host(host)
        self._down.discard(host)
        if host not in self._crashed:
            ip("link", "set", "eth0", "up", ns=self.namespace(host))
            wait_link_ready(self.switch, self._port[host], self.namespace(host), SPAWN_TIMEOUT)

    def crash(self, host: str) -> list[int]:
        """Crash ``host``: every process stopped, veth deleted, every process SIGKILLed.

        Returns the pids killed. The host stays silent (no FIN, no RST, no ARP
        answer) until :meth:`recover`.
        """
        self._check_open()
        ns = self.namespace(host)
        stopped = kill_all(ns, signal.SIGSTOP)
        if host not in self._crashed:
            self._crashed.add(host)
            ip("link", "delete", self._port[host], ns=self.switch)
        killed = kill_all(ns)
        return sorted(set(stopped) | set(killed))

    def recover(self, host: str) -> None:
        """Reboot a crashed ``host``: a fresh namespace, same addresses and partitions.

        The MAC address stays too (as a real host's would), so the others' ARP
        caches stay right.
        """
        self._check_open()
        if host not in self._crashed:
            return
        ns = self.namespace(host)
        kill_all(ns)
        ip("netns", "delete", ns)
        self._made.remove(ns)
        self._build_host(host)
        self._crashed.discard(host)

    def crashed(self) -> set[str]:
        """The hosts crashed and not yet recovered."""
        return set(self._crashed)

    def _need_iptables(self) -> None:
        if not self._iptables:
            raise BedCommandError("this bed was built with iptables=False: no partitions")

    def _check_pair(self, a: str, b: str) -> None:
        self._check_host(a)
        self._check_host(b)
        if a == b:
            raise ValueError(f"cannot partition {a} from itself")

    def _iptables_rule(self, op: str, receiver: str, sender: str) -> None:
        rule = [op, "INPUT", "-s", self._address[sender], "-j", "DROP"]
        iptables(self.namespace(receiver), self._iptables, rule)

    # -------------------------------------------------------------- teardown

    def _check_open(self) -> None:
        if self._closed:
            raise BedCommandError("this test bed is torn down")

    def close(self) -> None:
        """Kill every process, reap the spawned ones, delete every namespace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        untrack_live(self)
        restore = ignore_sigint()
        try:
            problems: list[str] = []
            for ns in [n for n in self._made if n != self.switch]:
                kill_all(ns)
            for proc in self._spawned:
                reap(proc)
            for ns in reversed(self._made):
                out = ip_error("netns", "delete", ns)
                if out:
                    problems.append(f"{ns}: {out}")
            self._made.clear()
            if problems:
                raise BedCommandError("teardown left namespaces: " + "; ".join(problems))
        finally:
            restore()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Tear down; a teardown error never hides the exception of the block."""
        try:
            self.close()
        except BedCommandError:
            if exc is None:
                raise
