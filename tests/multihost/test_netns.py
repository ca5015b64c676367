"""The network-namespace test bed itself, with real sockets and real processes.

No packet leaves the bed: every address used is one of the bed's (198.18.0.0/24)
or a host's own loopback; the "outside" checks are route lookups and a UDP
``connect`` (which sends nothing).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multihost.conftest import bed_or_skip
from tests.multihost.netns import NetnsUnavailable, TestBed, sweep_leftovers
from tests.multihost.tools import ip

pytestmark = pytest.mark.integration

#: How long a connection attempt may take before we call the path cut.
CUT = 0.3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, all closed at its end."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def listen(bed: TestBed, host: str, opened: list[socket.socket]) -> int:
    """A TCP listener on ``host``'s address; returns its port."""
    server = bed.socket(host)
    opened.append(server)
    server.bind((bed.address(host), 0))
    server.listen(16)
    return int(server.getsockname()[1])


def connect(bed: TestBed, src: str, address: str, port: int) -> str:
    """Try a TCP connection from ``src``: "ok", "timeout", "refused" or "unreachable"."""
    with contextlib.closing(bed.socket(src)) as client:
        client.settimeout(CUT)
        try:
            client.connect((address, port))
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except OSError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return "unreachable"
            raise
        return "ok"


def tcp(bed: TestBed, src: str, dst: str, port: int) -> str:
    """:func:`connect` from host ``src`` to host ``dst``."""
    return connect(bed, src, bed.address(dst), port)


def udp_delivered(bed: TestBed, src: str, dst: str) -> bool:
    """Whether one datagram from ``src`` reaches ``dst``."""
    with (
        contextlib.closing(bed.socket(dst, kind=socket.SOCK_DGRAM)) as rx,
        contextlib.closing(bed.socket(src, kind=socket.SOCK_DGRAM)) as tx,
    ):
        rx.bind((bed.address(dst), 0))
        rx.settimeout(CUT)
        tx.sendto(b"hello", rx.getsockname())
        try:
            return rx.recv(16) == b"hello"
        except TimeoutError:
            return False


def state(pid: int) -> str:
    """The one-letter state of ``pid`` from /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_for_state(pid: int, wanted: str) -> bool:
    """Whether ``pid`` reaches one of the ``wanted`` states within 5 s."""
    deadline = time.monotonic() + 5
    while state(pid) not in wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def root_links() -> set[str]:
    """Interface names of the root namespace."""
    return {line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link").splitlines()}


def test_server_in_b_is_reachable_from_a(bed: TestBed) -> None:
    """A real server process spawned in B answers a client in A, and sees A's address."""
    code = (
        "import socket,sys\n"
        "s=socket.create_server((sys.argv[1],0));print(s.getsockname()[1],flush=True)\n"
        "c,peer=s.accept();c.sendall(peer[0].encode());c.close()\n"
    )
    server = bed.spawn(
        "B", [sys.executable, "-c", code, bed.address("B")], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    with contextlib.closing(bed.socket("A")) as client:
        client.settimeout(5)
        client.connect((bed.address("B"), port))
        assert client.recv(64).decode() == bed.address("A")
    assert server.wait(timeout=5) == 0
    assert bed.pids("B") == []


def test_no_route_out_of_the_bed(bed: TestBed, sockets: list[socket.socket]) -> None:
    """Hosts have their own loopback and one address, no default route, no way out."""
    outside = socket.create_server(("127.0.0.1", 0))  # in the root namespace
    sockets.append(outside)
    for host in bed.hosts:
        # A host's 127.0.0.1 is its own: the root namespace's listener is not there.
        assert connect(bed, host, "127.0.0.1", outside.getsockname()[1]) == "refused"
        lookup = bed.run(host, ["ip", "route", "get", "1.1.1.1"], check=False)
        assert lookup.returncode != 0
        assert "unreachable" in lookup.stderr
        assert bed.run(host, ["ip", "route", "show", "default"]).stdout == ""
        assert bed.run(host, ["ip", "-6", "addr"]).stdout == ""
        addresses = bed.run(host, ["ip", "-4", "-o", "addr"]).stdout.split()
        assert sorted(a for a in addresses if "/" in a) == [
            "127.0.0.1/8",
            f"{bed.address(host)}/24",
        ]
        with contextlib.closing(bed.socket(host, kind=socket.SOCK_DGRAM)) as udp:
            with pytest.raises(OSError, match="unreachable") as info:
                udp.connect(("1.1.1.1", 53))  # a route lookup only: UDP connect sends nothing
            assert info.value.errno == errno.ENETUNREACH
    for host in bed.hosts:
        names = [
            line.split(":")[1].strip()
            for line in ip("-o", "link", ns=bed.namespace(host)).splitlines()
        ]
        assert [n.split("@")[0] for n in names] == ["lo", "eth0"]
    assert ip("-4", "addr", ns=bed.switch) == ""  # the switch is layer 2 only
    assert ip("route", ns=bed.switch) == ""
    links = ip("-o", "link", ns=bed.switch)
    assert "br0" in links
    assert all("master br0" in line for line in links.splitlines() if "port" in line)


def test_partition_both_ways_then_heal(bed: TestBed, sockets: list[socket.socket]) -> None:
    """A<->B times out both ways while A<->C and C<->B still work; heal restores A<->B."""
    port = {h: listen(bed, h, sockets) for h in ("A", "B", "C")}
    bed.partition("A", "B")
    assert tcp(bed, "A", "B", port["B"]) == "timeout"
    assert tcp(bed, "B", "A", port["A"]) == "timeout"
    assert tcp(bed, "A", "C", port["C"]) == "ok"
    assert tcp(bed, "C", "A", port["A"]) == "ok"
    assert tcp(bed, "C", "B", port["B"]) == "ok"
    assert bed.partitions() == {("A", "B"), ("B", "A")}
    assert "-s 198.18.0.1/32 -j DROP" in bed.run("B", [*bed._iptables, "-S", "INPUT"]).stdout
    bed.heal("A", "B")
    assert tcp(bed, "A", "B", port["B"]) == "ok"
    assert tcp(bed, "B", "A", port["A"]) == "ok"
    bed.isolate("C")
    assert bed.partitions() == {(h, "C") for h in "ABDE"} | {("C", h) for h in "ABDE"}
    assert tcp(bed, "A", "C", port["C"]) == "timeout"
    assert tcp(bed, "A", "B", port["B"]) == "ok"
    bed.partition("A", "B")
    bed.heal_all()
    assert bed.partitions() == set()
    for host in bed.hosts:
        assert bed.run(host, [*bed._iptables, "-S", "INPUT"]).stdout.split("\n")[1:] == [""]


def test_one_way_partition(bed: TestBed, sockets: list[socket.socket]) -> None:
    """Only A->B is dropped: datagrams B->A arrive, but TCP fails both ways (SYN-ACK lost)."""
    port = {h: listen(bed, h, sockets) for h in ("A", "B")}
    bed.partition("A", "B", one_way=True)
    assert bed.partitions() == {("A", "B")}
    assert not udp_delivered(bed, "A", "B")
    assert udp_delivered(bed, "B", "A")
    assert tcp(bed, "A", "B", port["B"]) == "timeout"  # A's SYN is lost
    assert tcp(bed, "B", "A", port["A"]) == "timeout"  # B's SYN arrives, A's SYN-ACK is lost
    bed.heal("A", "B", one_way=True)
    assert udp_delivered(bed, "A", "B")
    assert tcp(bed, "A", "B", port["B"]) == "ok"


def test_link_down_and_up(bed: TestBed, sockets: list[socket.socket]) -> None:
    """With A's veth down A has no route (fails at once) and B's packets to A are lost."""
    port = {h: listen(bed, h, sockets) for h in ("A", "B")}
    bed.link_down("A")
    assert tcp(bed, "A", "B", port["B"]) == "unreachable"
    assert tcp(bed, "B", "A", port["A"]) in ("timeout", "unreachable")
    assert "state DOWN" in bed.run("A", ["ip", "link", "show", "eth0"]).stdout
    bed.link_up("A")
    assert tcp(bed, "A", "B", port["B"]) == "ok"
    assert tcp(bed, "B", "A", port["A"]) == "ok"


def test_crash_kills_the_whole_host_at_once(bed: TestBed, sockets: list[socket.socket]) -> None:
    """Every process of A dies by SIGKILL, B's live on, A is silent, recover reboots it."""
    in_a = [bed.spawn("A", ["sleep", "60"]) for _ in range(3)]
    family = bed.spawn("A", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    in_b = bed.spawn("B", ["sleep", "60"])
    deadline = time.monotonic() + 5
    while len(bed.pids("A")) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    before = bed.pids("A")
    assert len(before) == 6
    port_b = listen(bed, "B", sockets)
    bed.partition("A", "C")
    assert tcp(bed, "B", "A", 9) == "refused"  # alive: a closed port answers RST

    killed = bed.crash("A")

    assert set(before) <= set(killed)
    assert all(p.wait(timeout=5) == -signal.SIGKILL for p in [*in_a, family])
    assert bed.pids("A") == []
    assert in_b.poll() is None
    assert bed.pids("B") == [in_b.pid]
    assert tcp(bed, "B", "A", 9) in ("timeout", "unreachable")  # crashed: silence
    assert bed.crashed() == {"A"}

    bed.recover("A")
    assert bed.crashed() == set()
    assert tcp(bed, "B", "A", 9) == "refused"
    assert tcp(bed, "A", "B", port_b) == "ok"
    assert tcp(bed, "A", "C", listen(bed, "C", sockets)) == "timeout"  # partition survives


def test_pause_and_resume(bed: TestBed) -> None:
    """SIGSTOP and SIGCONT of one process."""
    proc = bed.spawn("C", ["sleep", "60"], name="sleeper")
    assert bed.pid_of("sleeper") == proc.pid
    bed.pause(proc.pid)
    assert state(proc.pid) == "T"
    bed.resume(proc.pid)
    assert wait_for_state(proc.pid, "SR")


def test_failure_inside_the_block_still_tears_down() -> None:
    """An exception in ``with TestBed()`` leaves no namespace, link, rule or process."""
    links = root_links()
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    seen: dict[str, Any] = {}

    def break_things_then_fail() -> None:
        with bed_or_skip() as bed:
            seen["prefix"] = bed.prefix
            seen["sleeper"] = bed.spawn("A", ["sleep", "60"])
            bed.partition("A", "B")
            bed.partition("C", "D", one_way=True)
            bed.link_down("E")
            seen["namespaces"] = ip("netns", "list").count(bed.prefix)
            seen["links"] = root_links()  # nothing of the bed in the root namespace, ever
            raise RuntimeError("forced")

    with pytest.raises(RuntimeError, match="forced"):
        break_things_then_fail()
    prefix, sleeper = seen["prefix"], seen["sleeper"]
    assert seen["namespaces"] == 6
    assert seen["links"] == links
    assert prefix not in ip("netns", "list")
    assert not list(Path("/run/netns").glob(f"{prefix}-*"))
    assert sleeper.returncode == -signal.SIGKILL
    assert root_links() == links
    assert subprocess.run(["iptables-save"], capture_output=True, text=True).stdout == rules


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_tears_down(sig: signal.Signals) -> None:
    """SIGINT or SIGTERM (``timeout``'s) to a process inside ``with TestBed()`` removes all."""
    script = (
        "import signal,sys,time\n"
        # As a terminal's foreground child has it: a child of a background job
        # starts with SIGINT ignored, and would sleep through the Ctrl-C.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from tests.multihost.netns import TestBed\n"
        "with TestBed() as bed:\n"
        "    sleeper = bed.spawn('A', ['sleep', '60'])\n"
        "    print(bed.prefix, sleeper.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    with child:
        prefix, sleeper = child.stdout.readline().split()
        assert prefix.startswith(f"cfgha-{child.pid}-")
        assert ip("netns", "list").count(prefix) == 6
        child.send_signal(sig)
        assert child.wait(timeout=10) != 0
    assert prefix not in ip("netns", "list")
    assert not Path(f"/proc/{sleeper}").exists()


def test_sweep_removes_only_dead_owners(bed: TestBed) -> None:
    """Namespaces of a gone pid are swept; those of a live pid (like ours) are kept."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, alive = f"cfgha-{dead.pid}-1-a", f"cfgha-{os.getpid()}-99999-a"
    for name in (stale, alive):
        ip("netns", "add", name)
    try:
        assert stale in sweep_leftovers()
        listing = ip("netns", "list")
        assert stale not in listing
        assert alive in listing
        assert bed.namespace("A") in listing
    finally:
        for name in (stale, alive):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_spawn_as_another_user(bed: TestBed) -> None:
    """``user=`` runs the command as that user, still inside the host (setpriv after ip)."""
    nobody = pwd.getpwnam("nobody")
    done = bed.run("D", ["sh", "-c", "id -u; id -g; ip -4 -o addr show eth0"], user="nobody")
    uid, gid, addr = done.stdout.splitlines()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert bed.address("D") in addr
    proc = bed.spawn("E", ["sleep", "60"], user="nobody")
    assert bed.host_of(proc.pid) == "E"
    assert os.stat(f"/proc/{proc.pid}").st_uid == nobody.pw_uid


def test_unavailable_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root: TestBed raises NetnsUnavailable; the fixture skips, or fails under CI."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsUnavailable, match="root"), TestBed():
        pass
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception), bed_or_skip():
        pass
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"), bed_or_skip():
        pass
