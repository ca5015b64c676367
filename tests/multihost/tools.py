"""The system tools behind the test bed: ``ip``, ``iptables`` (installed when missing).

``iptables`` backends: Debian 12's package installs both ``iptables-nft`` (the
default through ``update-alternatives``) and ``iptables-legacy``; the kernel may
offer either. The first of ``iptables``, ``iptables-nft``, ``iptables-legacy`` that
can add and delete a rule inside a fresh namespace is used for the whole process,
so one namespace never mixes backends. ``-w`` is always passed: the legacy
backend takes the host-wide ``/run/xtables.lock`` even for rules in another
namespace, so parallel runs must wait for it rather than fail.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tests.helpers.debian import APT_TIMEOUT, apt_install

__all__ = [
    "APT_TIMEOUT",
    "PREFIX",
    "BedCommandError",
    "IptablesUnavailable",
    "NetnsUnavailable",
    "disable_ipv6",
    "ensure_iptables",
    "executable",
    "ignore_sigint",
    "in_namespace",
    "ip",
    "ip_error",
    "iptables",
    "iptables_command",
    "kill_all",
    "netns_pids",
    "pid_alive",
    "reap",
    "sweep_leftovers",
    "track_live",
    "untrack_live",
    "wait_link_ready",
    "wait_stopped",
]

#: Every namespace the bed makes starts with this; the owning pid follows.
PREFIX = "cfgha"
#: Signal-delivery rounds in :func:`kill_all` (a forking process may race us).
KILL_ROUNDS = 20

#: How long one ``ip`` command may take.
IP_TIMEOUT = 30.0
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_BACKENDS = ("iptables", "iptables-nft", "iptables-legacy")
_PROBE_ADDRESS = "198.18.0.255"
_chosen: list[str] | None = None
_OWNED = re.compile(rf"{PREFIX}-(\d+)-\d+-[a-z0-9]+")
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


class NetnsUnavailable(RuntimeError):
    """Network namespaces (or iptables for them) cannot be made on this machine."""


class IptablesUnavailable(NetnsUnavailable):
    """``iptables`` is missing and could not be installed, or works in no backend."""


class BedCommandError(RuntimeError):
    """A command building, changing or tearing down the test bed failed."""


def _which(program: str) -> str | None:
    return shutil.which(program, path=_SBIN_PATH)


def _ip_binary() -> str:
    found = _which("ip")
    if found is None:
        raise NetnsUnavailable("`ip` (iproute2) is not installed: apt-get install iproute2")
    return found


def ip_error(*args: str, ns: str | None = None) -> str:
    """Run ``ip [-n ns] args``; return its error text, or ``""`` when it succeeded."""
    argv = [_ip_binary(), *(["-n", ns] if ns else []), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {IP_TIMEOUT:g} s"
    if done.returncode == 0:
        return ""
    return done.stderr.strip().replace("\n", " / ") or f"exit status {done.returncode}"


def ip(*args: str, ns: str | None = None) -> str:
    """Run ``ip [-n ns] args`` and return its output; raise :class:`BedCommandError`."""
    argv = [_ip_binary(), *(["-n", ns] if ns else []), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BedCommandError(f"{' '.join(argv)}: timed out after {IP_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise BedCommandError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def netns_pids(namespace: str) -> list[int]:
    """The pids of every process in ``namespace`` (``ip netns pids``); [] if it is gone."""
    argv = [_ip_binary(), "netns", "pids", namespace]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if done.returncode != 0:
        return []
    return [int(word) for word in done.stdout.split()]


def _apt_install() -> str:
    """Install Debian's ``iptables``; return the error line, ``""`` on success."""
    return apt_install("iptables")


def ensure_iptables() -> None:
    """Make sure some ``iptables`` exists: as root, install Debian's package if missing."""
    if any(_which(b) for b in _BACKENDS):
        return
    if os.geteuid() != 0:
        raise IptablesUnavailable("iptables is not installed (and this process is not root)")
    error = _apt_install()
    if error or not any(_which(b) for b in _BACKENDS):
        raise IptablesUnavailable(
            f"iptables is missing and `apt-get install -y --no-install-recommends iptables` "
            f"failed: {error or 'no iptables binary afterwards'}"
        )


def iptables_command(namespace: str) -> list[str]:
    """The ``iptables`` argv prefix that works inside ``namespace`` (probed once)."""
    global _chosen
    if _chosen is not None:
        return list(_chosen)
    ensure_iptables()
    tried: list[str] = []
    rule = ["INPUT", "-s", _PROBE_ADDRESS, "-j", "DROP"]
    for backend in _BACKENDS:
        path = _which(backend)
        if path is None:
            continue
        argv = [path, "-w", "10"]
        in_ns = [_ip_binary(), "netns", "exec", namespace, *argv]
        added = subprocess.run(
            [*in_ns, "-A", *rule], capture_output=True, text=True, timeout=60, check=False
        )
        if added.returncode == 0:
            subprocess.run([*in_ns, "-D", *rule], capture_output=True, timeout=60, check=True)
            _chosen = argv
            return list(argv)
        tried.append(f"{backend}: {added.stderr.strip().splitlines()[-1:] or '?'}")
    raise IptablesUnavailable("no iptables backend works in a namespace: " + "; ".join(tried))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_all(namespace: str, sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to every process of ``namespace`` until none is left (SIGKILL)."""
    hit: list[int] = []
    for _ in range(KILL_ROUNDS):
        pids = [p for p in netns_pids(namespace) if p not in hit or sig == signal.SIGKILL]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            if pid not in hit:
                hit.append(pid)
        if sig != signal.SIGKILL:
            continue
        deadline = time.monotonic() + 1.0
        while netns_pids(namespace) and time.monotonic() < deadline:
            time.sleep(0.005)
    return hit


def sweep_leftovers() -> list[str]:
    """Delete the namespaces of earlier runs whose owning process is gone.

    Only names of this module's form (``cfgha-<pid>-<run>-<host>``) are touched,
    and only when ``<pid>`` no longer exists. Returns the names deleted.
    """
    listing = ip("netns", "list")
    gone: list[str] = []
    for line in listing.splitlines():
        name = line.split(" ", 1)[0]
        match = _OWNED.fullmatch(name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        kill_all(name)
        ip_error("netns", "delete", name)
        gone.append(name)
    return gone


def in_namespace(namespace: str, work: Callable[[], _T]) -> _T:
    """Run ``work`` in a fresh thread that has joined ``namespace`` (setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {namespace}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["result"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"setns-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def disable_ipv6() -> None:
    for conf in ("all", "default"):
        with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
            f.write("1")


def reap(proc: subprocess.Popen[Any]) -> None:
    """Kill (if still running), wait for and close the pipes of ``proc``."""
    try:
        proc.kill()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def ignore_sigint() -> Callable[[], None]:
    """Ignore Ctrl-C while tearing down (main thread only); returns the restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


def executable(pid: int) -> str | None:
    """The resolved path of the program ``pid`` runs, or ``None`` if it is gone."""
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def wait_stopped(pid: int, timeout: float) -> None:
    """Wait (up to ``timeout`` s) until ``pid`` is stopped, a zombie or gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "TtZX":
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.001)


def wait_link_ready(switch: str, port: str, host_ns: str, timeout: float) -> None:
    """Wait until a host's ``eth0`` and its switch port are up and the port forwards.

    Measured here: connecting at once after ``link set eth0 up`` lost the first
    ARP exchange in 5 of 400 tries (a 1 s retry); after this wait, in 0 of 800.
    The likely cause: the bridge port leaves "disabled" only when a kernel worker
    handles the carrier event (link-watch), which on a loaded machine can come a
    few ms after ``ip link set up`` returns; frames in between are dropped. (An
    ``ip`` call itself takes about 3 ms, so the port already read "forwarding" at
    the first look in every try.) The wait costs two ``ip`` calls.
    """
    deadline = time.monotonic() + timeout
    while True:
        port_line = ip("-o", "-d", "link", "show", port, ns=switch)
        host_line = ip("-o", "link", "show", "eth0", ns=host_ns)
        if (
            "state UP" in host_line
            and "state UP" in port_line
            and "bridge_slave state forwarding" in port_line
        ):
            return
        if time.monotonic() > deadline:
            raise BedCommandError(f"{port} of {switch} not forwarding after {timeout:g} s")
        time.sleep(0.002)


def iptables(namespace: str, command: list[str], rule: list[str]) -> None:
    """Run ``command`` (from :func:`iptables_command`) with ``rule`` inside ``namespace``."""
    done = subprocess.run(
        [_ip_binary(), "netns", "exec", namespace, *command, *rule],
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BedCommandError(f"iptables {' '.join(rule)} in {namespace}: {done.stderr.strip()}")


class _Closable(Protocol):
    def close(self) -> None: ...


#: Beds built and not yet closed (strong references: a forgotten bed is still torn down).
_live: set[_Closable] = set()
_previous_sigterm: Any = None


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}: tearing the test bed down")


def track_live(bed: _Closable) -> None:
    """Remember a live bed; while any lives, SIGTERM (if not handled) acts as Ctrl-C.

    So ``timeout`` or a CI runner stopping the run still tears the bed down
    (pytest runs its fixtures' teardown on KeyboardInterrupt); an ``atexit``
    hook closes any bed left open.
    """
    global _previous_sigterm
    main = threading.current_thread() is threading.main_thread()
    if not _live and main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        _previous_sigterm = signal.signal(signal.SIGTERM, _sigterm)
    _live.add(bed)


def untrack_live(bed: _Closable) -> None:
    """Forget a closed bed; the last one gone restores SIGTERM's previous handler."""
    global _previous_sigterm
    _live.discard(bed)
    if _live or _previous_sigterm is None:
        return
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is _sigterm:  # not if replaced since
        signal.signal(signal.SIGTERM, _previous_sigterm)
    _previous_sigterm = None


@atexit.register
def _close_forgotten_beds() -> None:
    for bed in list(_live):
        with contextlib.suppress(BedCommandError):
            bed.close()
