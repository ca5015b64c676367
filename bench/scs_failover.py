"""Failovers of the supervisor's benchmark (``bench/bench_scs.py``), each timed and explained.

:func:`run_system` runs the generated pair under ``scs -f``
(``tests/helpers/system.py``'s :class:`System`, no proxy) with a writer
through the resilient client, faults the primary run after run
(:func:`failover_runs`) and records each as a :class:`FailoverRun`: when the
new primary acknowledged its first write, and what the supervisor's and the
servers' logs say happened. :class:`Operator` waits for the pair to heal
between runs and promotes a backup by hand when the pair is left without a
primary. Every time is ``time.monotonic()`` in this process, log lines are
wall clock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from addp import AddpError
from bench.measure import CpuWindow, log_stamps
from confserv.client.session import open_management
from confserv.wire.errors import ConfServError
from tests.helpers.system import MEMBERS, SECRET, Rows, System, Writer, healthy, primary_of

#: Writes the primary must have acknowledged before a fault; tight writing before the fault.
SETTLE_ACKS = 20
LEAD = 0.3
#: Longest time one failover may take before the benchmark gives up.
RUN_TIMEOUT = 30.0
#: Longest time the pair may take to be healthy again.
HEAL_TIMEOUT = 60.0
#: Both members backup this long after a run: the benchmark promotes one by hand.
NO_PRIMARY_GRACE = 3.0
#: Longest wait for the writer's first writes on a primary the supervisor reports.
SETTLE_TIMEOUT = 10.0
#: Event ids of the supervisor's log (scs/events.py).
EV_DIED, EV_SILENT, EV_PROMOTED, EV_SPLIT = 40301, 40302, 40306, 40310
EV_LINK_UP, EV_LINK_LOST = 40201, 40202
#: A Configuration Server's database error, lease taken, role changed (confserv/logs/events.py).
EV_DB_ERROR, EV_LEASE_TAKEN, EV_ROLE = 20150, 20160, 20162
#: The generated system's supervised sections also have these (many deliberate kills).
SCS_LINES = "restart-limit = 1000\nrestart-window = 60\nstop-timeout = 5\n"


@dataclass(frozen=True, slots=True)
class FailoverRun:
    """One failover, every time in seconds from the fault (None: not seen).

    ``to_ack`` is None when the new primary acknowledged no write while the
    old one was stopped. ``lock_wait``: the new primary logged a database
    error (20150, e.g. "database is locked") after the fault, or took the
    lease (20160) only after the stopped server got SIGCONT; ``self_fenced``:
    it then dropped to backup by itself ("self-fenced", 20162); ``operator``
    counts the promotions the benchmark had to make by hand afterwards
    because the pair was left with no primary.
    """

    old: str
    new: str
    to_ack: float | None
    epoch: int
    to_lost: float | None
    to_detected: float | None
    to_promoted: float | None
    to_healthy: float
    lock_wait: bool
    self_fenced: bool
    operator: int


def _first_stamp(text: str, event_id: int, wall: float) -> float | None:
    """Seconds from ``wall`` to the first ``event_id`` line at or after it (1 ms resolution)."""
    stamps = [s for s in log_stamps(text, event_id, wall) if s >= wall - 0.001]
    return min(stamps) - wall if stamps else None


class Operator:
    """Waits for the pair to heal, and promotes a backup by hand when it has no primary."""

    def __init__(self, system: System) -> None:
        self.system = system
        #: Promotions :meth:`heal` made by hand (a pair left with no primary).
        self.promotions = 0

    async def _status(self) -> Rows | None:
        try:
            with trio.fail_after(10):
                return await self.system.status()
        except (OSError, ConfServError, AddpError, trio.TooSlowError):
            return None

    async def heal(
        self, predicate: Callable[[Rows], bool], *, timeout: float = 60.0, grace: float = 5.0
    ) -> Rows:
        """Wait until ``predicate`` holds and the primary it names says so itself.

        The supervisor's view is checked against the servers' own: when both
        members say they are backup for ``grace`` seconds, the one with the
        higher serial is asked to ``switch-to-primary`` (without force) on its
        management port, as an operator would with ``cfgctl promote``; again
        every ``grace`` seconds while refused. Such promotions are counted in
        :attr:`promotions`.
        """
        system = self.system
        deadline = time.monotonic() + timeout
        no_primary_since: float | None = None
        next_check = time.monotonic() + 1.0
        while True:
            system.check_alive()
            last = await self._status()
            now = time.monotonic()
            if last is not None and predicate(last):
                own = await system.member_status(primary_of(last))
                if own is not None and own.get("role") == "primary":
                    return last
            if now >= next_check:
                next_check = now + 1.0
                mine = {s: await system.member_status(s) for s in MEMBERS}
                serials = {s: int(m["serial"]) for s, m in mine.items() if m is not None}
                if all(m is not None and m.get("role") == "backup" for m in mine.values()):
                    no_primary_since = no_primary_since or now
                    if now - no_primary_since >= grace:
                        no_primary_since = now
                        await self._promote(max(serials, key=lambda s: serials[s]))
                else:
                    no_primary_since = None
            if now > deadline:
                raise RuntimeError(
                    f"condition not reached in {timeout:g} s; last status {last}\n"
                    + system.log_tail()
                )
            await trio.sleep(0.05)

    async def _promote(self, section: str) -> None:
        port = self.system.management_ports[section]
        try:
            with trio.fail_after(10):
                async with open_management("127.0.0.1", port, SECRET, timeout=5) as m:
                    await m.switch_to_primary(force=False)
            self.promotions += 1
        except (OSError, ConfServError, AddpError, trio.TooSlowError):
            pass


async def _settle(operator: Operator, writer: Writer) -> Rows:
    """A healthy pair whose primary has acknowledged :data:`SETTLE_ACKS` writes of the writer."""
    system = operator.system
    for _ in range(5):
        rows = await operator.heal(healthy, timeout=HEAL_TIMEOUT, grace=NO_PRIMARY_GRACE)
        address, since = system.address(primary_of(rows)), time.monotonic()
        with trio.move_on_after(SETTLE_TIMEOUT):
            while writer.acks_from(address, since) < SETTLE_ACKS:
                await writer.next_ack()
            return rows
    raise RuntimeError(f"the writer could not write to the primary\n{system.log_tail()}")


async def failover_runs(
    system: System,
    fault: signal.Signals,
    runs: int,
    budget: float,
    give_up: float,
    idle_window: float = 0.0,
) -> tuple[list[FailoverRun], Writer, dict[str, float]]:
    """Bring the pair up, then fault the primary ``runs`` times (or until ``budget`` s passed).

    A SIGSTOPped primary gets SIGCONT once the new primary has acknowledged a
    write, or after ``give_up`` seconds without one (the run then has no
    failover time). A SIGKILL run that takes longer is an error. With
    ``idle_window``, the CPU of the supervisor and of both servers (per cent of
    one core) is first measured over that many seconds of an idle, healthy pair.
    """
    writer = Writer.for_system(system, pause_on_error=False)
    operator = Operator(system)
    out: list[FailoverRun] = []
    detected_event = EV_DIED if fault == signal.SIGKILL else EV_SILENT
    idle: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        rows = await operator.heal(healthy, timeout=HEAL_TIMEOUT)
        if idle_window > 0:
            await trio.sleep(1.0)
            window = CpuWindow({"scs": system.pid} | {s: int(rows[s]["pid"]) for s in MEMBERS})
            await trio.sleep(idle_window)
            idle = window.percent()
            del idle["machine"]
        await nursery.start(writer.run)
        hand = operator.promotions
        started = time.monotonic()
        for _ in range(runs):
            if time.monotonic() - started > budget:
                break
            rows = await _settle(operator, writer)
            old = primary_of(rows)
            new = MEMBERS[1] if old == MEMBERS[0] else MEMBERS[0]
            pid, epoch = int(rows[old]["pid"]), int(rows[old]["epoch"])
            if not system.owns(pid):
                raise RuntimeError(f"pid {pid} of {old!r} is not one of our servers")
            writer.tight = True
            await trio.sleep(LEAD)
            wall, t0 = time.time(), time.monotonic()
            os.kill(pid, fault)
            ack = None
            try:
                with trio.move_on_after(give_up):
                    while (ack := writer.first_ack(t0, system.address(new), epoch + 1)) is None:
                        await writer.next_ack()
            finally:
                writer.tight = False
                cont = time.time()
                if fault == signal.SIGSTOP:
                    # Gone when the supervisor fenced it (stopped inside a SQLite
                    # transaction, it blocked the failover: fenced lease-ttl later).
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            if ack is None and fault != signal.SIGSTOP:
                raise RuntimeError(
                    f"no failover {give_up:g} s after {fault.name}\n{system.log_tail()}"
                )

            def back(r: Rows, old: str = old, new: str = new) -> bool:
                return healthy(r) and r[new]["role"] == "primary" and r[old]["role"] == "backup"

            await operator.heal(
                back if ack is not None else healthy, timeout=HEAL_TIMEOUT, grace=NO_PRIMARY_GRACE
            )
            healed = time.monotonic() - t0
            log = system.log()
            new_log = system.server_log(new)
            taken = _first_stamp(new_log, EV_LEASE_TAKEN, wall)
            fenced = "\n".join(x for x in new_log.splitlines() if "self-fenced" in x)
            lost = writer.first_lost(t0)
            end = ack.at if ack is not None else t0 + give_up
            run = FailoverRun(
                old=old,
                new=new,
                to_ack=None if ack is None else ack.at - t0,
                epoch=epoch if ack is None else ack.epoch,
                to_lost=None if lost is None or lost > end else lost - t0,
                to_detected=_first_stamp(log, detected_event, wall),
                to_promoted=_first_stamp(log, EV_PROMOTED, wall),
                to_healthy=healed,
                lock_wait=_first_stamp(new_log, EV_DB_ERROR, wall) is not None
                or (fault == signal.SIGSTOP and (taken or 0.0) >= cont - wall - 0.001),
                self_fenced=_first_stamp(fenced, EV_ROLE, wall) is not None,
                operator=operator.promotions - hand,
            )
            out.append(run)
            hand = operator.promotions
            shown = "NO FAILOVER" if run.to_ack is None else f"{run.to_ack * 1000:.0f} ms"
            print(
                f"    run {len(out)}: {old} -> {new}: {shown}"
                + (" (lease taken only after SIGCONT: SQLite lock)" if run.lock_wait else "")
                + (" (then self-fenced)" if run.self_fenced else "")
                + (" (left WITHOUT A PRIMARY: promoted by hand)" if run.operator else ""),
                flush=True,
            )
        nursery.cancel_scope.cancel()
    return out, writer, idle


def run_system(
    fault: signal.Signals, runs: int, budget: float, give_up: float, idle_window: float = 0.0
) -> tuple[list[FailoverRun], str, dict[str, float]]:
    """One generated system under ``scs -f`` for the runs; (runs, notes on the supervisor's log)."""
    with tempfile.TemporaryDirectory(prefix="bench-scs-") as tmp:
        system = System(Path(tmp), proxy=False, verbose="standard", scs_lines=SCS_LINES)
        system.start()
        try:
            done, writer, idle = trio.run(
                failover_runs, system, fault, runs, budget, give_up, idle_window
            )
            split = system.logged(EV_SPLIT)
            refused = len(writer.refused)
            codes = sorted({code for _, code in writer.refused})
            extra = (
                f"writer: {len(writer.acks)} acknowledged writes, {len(writer.lost)} cut off "
                f"(outcome unknown), {refused} refused{f' ({codes})' if codes else ''}; "
                f"supervisor logged {split} split-brain alarm(s) (40310)"
            )
        finally:
            system.stop()
    return done, extra, idle
