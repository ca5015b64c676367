"""Misconfiguration faults for the real schedules (issue 10): what an operator can get wrong.

- ``third-master``: a confserv process for a section of the same database
  that the pair does not link: ``third-master unlinked`` (its Application
  ``third`` exists, a Configuration Server the pair does not name) or
  ``third-master unknown`` (no Application ``stray`` at all). It must exit 2
  with one line and never take the lease.
- ``duplicate-start``: a second process of the primary's (or the backup's)
  Application, on other ports, as an operator who copied its file would start
  it. It must exit 2 with one line; the primary keeps its epoch.
- ``scs-restart-mid-failover``: the primary is killed (``kill-primary``) or
  stopped (``pause-primary``, resumed later), and the supervisor is killed
  with SIGKILL during the failover, either at once (``at-fault``) or as soon
  as its log shows the decision (``at-decision``: 40304 or 40305), then
  started again. A restarted supervisor may start a copy of a stopped
  primary, which exits 2: not a proof of death. The pair must heal and the
  checker find nothing.

The misconfigured processes run outside the supervisor, from their own file
(``misconfig.conf``, written next to the system's ``confserv.conf`` from its
options), with their own log (``<name>.misconfig.log``) so that the oracle
(:mod:`tests.chaos.oracle`) can tell their lease takes, if any, from the
pair's. They reach the database directly, not through a relay.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from addp import LinkEnded
from confserv.client.session import open_client
from confserv.wire.errors import ConfServError

from ..helpers.system import BIN, PASSWORD, free_port, healthy, primary_of
from .checker import Fault, Misconfig, Record

if TYPE_CHECKING:
    from .real import Harness, Planned

KINDS = ("third-master", "duplicate-start", "scs-restart-mid-failover")
#: The Application the pair does not link (created once per system), and one that does not exist.
UNLINKED, UNKNOWN = "third", "stray"
#: How long a misconfigured process may live before it is a violation (and is killed).
EXIT_DEADLINE = 30.0
#: How long to wait for the supervisor's decision line (40304/40305) after the fault.
DECISION_WAIT = 8.0


def draw(rng: random.Random, kind: str) -> dict[str, Any]:
    """The :class:`~tests.chaos.real.Planned` fields of one misconfiguration fault."""
    if kind == "third-master":
        return {"what": rng.choice(("unlinked", "unknown"))}
    if kind == "duplicate-start":
        return {"what": rng.choice(("primary", "primary", "backup"))}
    return {
        "what": rng.choice(("kill-primary", "pause-primary")),
        "mode": rng.choice(("at-fault", "at-decision")),
        "pause_after": rng.uniform(0, 0.05),  # from the trigger to the supervisor's SIGKILL
        "duration": rng.uniform(0, 0.8),  # the supervisor down, before its restart
        "delay": rng.uniform(0.5, 15.0),  # pause-primary: resumed this long after the restart
    }


async def log_line(path: Path, offset: int, ids: tuple[int, ...], timeout: float) -> str | None:
    """The first line after byte ``offset`` of the log ``path`` with one of the event ``ids``."""
    marks = [f" {i:05d} " for i in ids]
    with trio.move_on_after(timeout):
        while True:
            with path.open("rb") as f:
                f.seek(offset)
                for line in f.read().decode(errors="replace").splitlines():
                    if any(m in line for m in marks):
                        return line
            await trio.sleep(0.002)
    return None


async def prepare(h: Harness) -> None:
    """Create the Application ``third``: a Configuration Server the pair does not link."""
    rows = await h.system.wait(lambda r: any(r[s]["role"] == "primary" for s in h.pair), 90)
    primary = ("127.0.0.1", h.system.ports[primary_of(rows)])
    with trio.fail_after(30):
        async with open_client([primary], app="chaos-op", user="default", password=PASSWORD) as c:
            if await c.get("Application", UNLINKED) is None:
                await c.create("Application", {"name": UNLINKED, "app_type": "ConfigServer"})


def _conf(h: Harness) -> Path:
    """``misconfig.conf``: the pair's options for every section it may run, on fresh ports."""
    system = configparser.ConfigParser(interpolation=None)
    system.optionxform = str  # type: ignore[assignment,method-assign]
    system.read(h.system.conf)
    out = configparser.ConfigParser(interpolation=None)
    out.optionxform = str  # type: ignore[assignment,method-assign]
    skip = ("port", "management-port", "server", "advertise-port", "advertise-management-port")
    options = {k: v for k, v in system["confserv"].items() if k not in skip}
    for section in (*h.pair, UNLINKED, UNKNOWN):
        out[section] = {
            "port": str(free_port()),
            "management-port": str(free_port()),
            "server": "db-direct",
            **options,
        }
    out["log"] = {"verbose": "standard", "all": "stderr"}
    if h.cluster is None:
        db = dict(system["db"])
        db["dbname"] = str(h.system.tmp / db["dbname"])
    else:
        db = dict(system[f"db-{h.pair[0]}"])
        db["dbserver"], db["port"] = "127.0.0.1", str(h.cluster.port)
    out["db-direct"] = db
    text = io.StringIO()
    out.write(text)
    path = h.system.tmp / "misconfig.conf"
    path.write_text(text.getvalue())
    return path


async def _primary_epoch(h: Harness) -> int | None:
    """The primary's epoch by the supervisor's status now (None: no primary, or no answer)."""
    with trio.move_on_after(5):
        while True:
            try:
                rows = await h.system.status()
                primary = [rows[s] for s in h.pair if rows[s]["role"] == "primary"]
                return int(primary[0]["epoch"]) if primary else None
            except (OSError, ConfServError, LinkEnded):
                await trio.sleep(0.05)
    return None


async def _start_misconfigured(
    h: Harness, p: Planned, section: str, name: str, record: Record, epoch: int | None
) -> None:
    """Run ``confserv -s section`` from ``misconfig.conf`` until it exits; record the outcome.

    ``epoch``: the primary's when the pair was healthy at the start; None means no
    rule on failovers for this fault. The rule is the checker's on
    :class:`~tests.chaos.checker.Misconfig` (the primary's epoch before and after),
    not the short-fault rule on promotions seen in a window: the poller may see a
    promotion made just before the start a little after it.
    """
    conf = _conf(h)
    log = h.system.tmp / f"{section}{'-duplicate' if name != section else ''}.misconfig.log"
    h.extra_logs[name] = log
    offset = log.stat().st_size if log.exists() else 0
    fault = Fault(p.kind, p.label, trio.current_time(), 0.0)
    record.faults.append(fault)
    with log.open("ab") as out:
        proc = await trio.lowlevel.open_process(
            [str(BIN / "confserv"), "-s", section, "-c", str(conf)],
            cwd=h.system.tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    code: int | None = None
    try:
        with trio.move_on_after(EXIT_DEADLINE):
            code = await proc.wait()
    finally:
        if code is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
    end = trio.current_time()
    fault.duration = end - fault.start
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.startswith("confserv:")]
    after = await _primary_epoch(h)
    record.misconfigs.append(
        Misconfig(p.kind, name, fault.start, end, code, lines[0] if lines else "", epoch, after)
    )


async def _restart_supervisor_mid_failover(
    h: Harness, p: Planned, rows: dict[str, dict[str, Any]], record: Record
) -> None:
    primary = rows[primary_of(rows)]
    if not primary["pid"] or h.system.proc is None:
        return
    pid = int(primary["pid"])
    offset = h.system.logfile.stat().st_size
    fault = Fault(p.kind, p.label, trio.current_time(), 0.0)
    signum = signal.SIGKILL if p.what == "kill-primary" else signal.SIGSTOP
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return  # it had just died of an earlier fault
    record.faults.append(fault)
    try:
        if p.mode == "at-decision":
            await log_line(h.system.logfile, offset, (40304, 40305), DECISION_WAIT)
        await trio.sleep(p.pause_after)
        h.system.proc.kill()
        await trio.to_thread.run_sync(h.system.proc.wait)
        await trio.sleep(p.duration)
        h.system.start(append=True)
        if signum == signal.SIGSTOP:
            await trio.sleep(p.delay)
    finally:
        if signum == signal.SIGSTOP:
            with contextlib.suppress(ProcessLookupError):  # fenced by the supervisor meanwhile
                os.kill(pid, signal.SIGCONT)
        fault.duration = trio.current_time() - fault.start


async def inject(h: Harness, p: Planned, rows: dict[str, dict[str, Any]], record: Record) -> None:
    """Inject one misconfiguration fault (see the module docstring)."""
    primary = primary_of(rows)
    # Judged against the primary's epoch only beside a healthy pair: while an earlier
    # fault is still being healed, a failover may be due whatever this process does.
    calm = healthy(rows) and rows[primary]["epoch"]
    epoch = int(rows[primary]["epoch"]) if calm else None
    if p.kind == "third-master":
        section = UNLINKED if p.what == "unlinked" else UNKNOWN
        await _start_misconfigured(h, p, section, section, record, epoch)
    elif p.kind == "duplicate-start":
        backup = next(s for s in h.pair if s != primary)
        section = primary if p.what == "primary" else backup
        if rows[section]["state"] != "running" or not rows[section]["pid"]:
            # Not a duplicate: with the server down (e.g. the supervisor's slow retry
            # after a crash loop) this process is rightly the one instance (found by
            # make chaos, PostgreSQL, first seed 180401, schedule 281).
            return
        await _start_misconfigured(h, p, section, f"{section} (duplicate)", record, epoch)
    else:
        await _restart_supervisor_mid_failover(h, p, rows, record)
