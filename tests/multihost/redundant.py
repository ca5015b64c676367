"""Judging two supervisors on the multi-host bed (issue 14): who commanded what, at which epoch.

Every server logs each supervisor command it admits (event 20125, "Management
command '<op>' from <peer> admitted at supervisor epoch <n>") and every agent
each start, stop or signal it admits ("<op> of <name> from <peer> admitted at
supervisor epoch <n>"). :func:`admissions` reads them all from the
installation's logs (the servers' ``<host>/<section>.log``, the agents'
``lca-<host>.log``; a crashed and rebooted host's logs go on in the same
files), and :func:`check_admissions` finds

- a supervisor epoch whose commands were admitted from two supervisor hosts
  (two peer addresses): two supervisors acted in one term;
- a target (a server, or an agent) that admitted an epoch older than one it
  had admitted before: a deposed supervisor's command landed after its
  successor's.

:class:`TwiceWatch` samples, every 0.2 s, how many processes run each server
(more than one: started twice). :func:`supervisor_lease` reads the supervisor
lease's row from the writable database (its ``expires_at`` is on the same
clock as ``time.time()``: every host of the bed is one kernel).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.system import BIN
from tests.multihost.system import (
    ADDP_TIMEOUT,
    LEASE_TTL,
    MEMBERS,
    PROXY_HOST,
    SUPERVISOR_RETRY,
    SUPERVISOR_TTL,
    MultiHost,
    healthy,
    primary_of,
)

_SERVER = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ 20125 Management command '([^']+)' from (\S+) "
    r"admitted at supervisor epoch (\d+)"
)
_AGENT = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (start|stop|signal) of (\S+) from (\S+) "
    r"admitted at supervisor epoch (\d+)"
)
_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

#: A standby's take-over after the active's death: the lease runs out (at most ttl
#: after its last renewal, sent before the fault), and the standby's next look
#: (every retry) reads it expired and takes it; 0.5 s for the database's round trips
#: and the bed's load (six hosts' processes on two cores).
TAKEOVER_BOUND = SUPERVISOR_TTL + SUPERVISOR_RETRY + 0.5
#: The usual failover bound on the bed for a primary that leaves no proof of death
#: (test_failover's crash and bench_multihost's target): its lease, then the
#: writer's own ADDP noticing; 300 ms for the promotion and the write itself.
FAILOVER_BOUND = LEASE_TTL + 2 * ADDP_TIMEOUT + 0.3


@dataclass(frozen=True)
class Admitted:
    """One command a server or an agent admitted: where, what, from which address, epoch."""

    target: str  # "server confserv", "agent A"
    command: str
    peer: str  # the supervisor's address (its IP, without the port)
    epoch: int


def _peer(text: str) -> str:
    match = _IP.search(text)
    return match.group(0) if match else text


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def admissions(system: MultiHost) -> list[Admitted]:
    """Every admitted supervisor command in the servers' and the agents' logs, each
    target's in its log's order (which is the order it admitted them)."""
    out: list[Admitted] = []
    servers = {**MEMBERS, "proxy": PROXY_HOST}
    for section, host in servers.items():
        for line in _lines(system.tmp / host / f"{section}.log"):
            if match := _SERVER.match(line):
                op, peer, epoch = match.groups()
                out.append(Admitted(f"server {section}", op, _peer(peer), int(epoch)))
    for host in sorted(system.agents):
        for line in _lines(system.tmp / f"lca-{host}.log"):
            if match := _AGENT.match(line):
                op, name, peer, epoch = match.groups()
                out.append(Admitted(f"agent {host}", f"{op} {name}", _peer(peer), int(epoch)))
    return out


def check_admissions(found: list[Admitted]) -> list[str]:
    """The violations: an epoch admitted from two supervisor hosts; an epoch going back
    at a target."""
    violations: list[str] = []
    peers: dict[int, set[str]] = {}
    for a in found:
        peers.setdefault(a.epoch, set()).add(a.peer)
    for epoch, where in sorted(peers.items()):
        if len(where) > 1:
            violations.append(
                f"supervisor epoch {epoch}: commands admitted from {len(where)} supervisor "
                f"hosts ({', '.join(sorted(where))})"
            )
    newest: dict[str, Admitted] = {}
    for a in found:
        last = newest.get(a.target)
        if last is not None and a.epoch < last.epoch:
            violations.append(
                f"{a.target} admitted '{a.command}' from {a.peer} at supervisor epoch "
                f"{a.epoch} after '{last.command}' from {last.peer} at epoch {last.epoch}"
            )
        if last is None or a.epoch >= last.epoch:
            newest[a.target] = a
    return violations


def supervisor_lease(system: MultiHost) -> dict[str, Any]:
    """The supervisor lease's row now: epoch, holder, expires_at (``time.time()`` clock)."""
    text = system.pg.writable.psql(
        "SELECT epoch, holder, expires_at FROM cfg_lease WHERE name = 'supervisor'",
        dbname=system.dbname,
    ).strip()
    epoch, holder, expires = text.split("|")
    return {"epoch": int(epoch), "holder": holder, "expires_at": float(expires)}


def supervisor(system: MultiHost, host: str) -> dict[str, Any]:
    """The ``supervisor`` part of ``scs status --json`` on ``host`` ({} if it does not answer)."""
    info: dict[str, Any] = system.status_json(host).get("supervisor") or {}
    return info


def wait_mode(system: MultiHost, host: str, mode: str, timeout: float = 30.0) -> dict[str, Any]:
    """Until the supervisor on ``host`` says it is ``mode`` (active: acting too)."""
    deadline = time.monotonic() + timeout
    while True:
        info = supervisor(system, host)
        if info.get("mode") == mode and (mode != "active" or info.get("acting")):
            return info
        if time.monotonic() > deadline:
            raise TimeoutError(f"scs on {host} never {mode}: {info}\n{system.log_tail()}")
        time.sleep(0.1)


def boot_supervisor(system: MultiHost, host: str, timeout: float = 20.0) -> None:
    """The supervisor on ``host`` started again, as at boot (systemd's restart: again
    while it exits, e.g. refused while its crashed self's presence row is still live)."""
    deadline = time.monotonic() + timeout
    while True:
        system.start_scs(host)
        proc = system.scs_procs[host]
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:  # still running after 2 s: it is up
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"scs on {host} keeps exiting:\n{system.log_tail()}")
        time.sleep(0.5)


def switchover(system: MultiHost, host: str, pair: str = "confserv") -> str:
    """``scs switchover PAIR`` through the supervisor on ``host``; once healthy with the
    old primary backup, the new primary."""
    old = primary_of(system.wait_status(healthy, timeout=60))
    argv = [str(BIN / "scs"), "switchover", pair, "-f", str(system.scs_conf_of(host))]
    system.bed.run(host, argv, timeout=60)
    rows = system.wait_status(lambda r: healthy(r) and r[old]["role"] == "backup", timeout=60)
    return primary_of(rows)


class TwiceWatch:
    """Samples, every 0.2 s, how many processes run each server; keeps what it saw twice."""

    def __init__(self, system: MultiHost) -> None:
        self.system = system
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for section in (*MEMBERS, "proxy"):
                count = self.system.server_count(section)
                if count > 1:
                    self.seen.append(f"{section} ran {count} times at once")

    def __enter__(self) -> TwiceWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
