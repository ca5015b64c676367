"""A simulated Configuration Database: the real plans on an in-memory SQLite, on the trio clock.

:class:`SimDatabase` is one world's database. It runs the store's own plans
(:mod:`confserv.store.base`, :mod:`confserv.store.leases`) synchronously
against one in-memory SQLite connection through the real
:class:`~confserv.store.sqlite.SqliteStore` plan runner, with ``{now}`` read
from the trio clock (lease expiry is MockClock time). Each process reaches it
through its own :class:`SimStore` (a :class:`~confserv.store.base.ConfigStore`),
which adds what a network and a database server add:

- latency: every call travels there and back (:attr:`SimDatabase.latency`);
- stalls: the database answers nothing until a time (``stall``; a call waits,
  or fails after ``response_timeout``);
- lost answers: a call runs (a commit lands) but its answer never comes back
  (``lose_answers``: the caller gets ``UnavailableError``);
- unreachable: one process is cut off (``cut_off``): its calls fail at once
  (``refuse``) or after ``response_timeout`` (``hang``);
- its process's :class:`~tests.sim.gate.Gate`: paused, a call waits (its
  answer too); dead, it fails and nothing more runs for it;
- a process stopped with a commit on its way (``pause_at_next_commit``): its
  request waits until it resumes (``before``), or it holds the database's
  write lock meanwhile, as a SQLite writer stopped inside its transaction
  (``inside``): every other write waits (or fails after the timeout) until it
  resumes or dies (then its transaction is rolled back).

The database also watches itself, as only a simulation can (:attr:`SimDatabase.violations`):
every commit is at the lease's epoch of that moment (fencing), and a valid
lease is taken over only by force and only from a process that is dead
(proof of death).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from confserv.store.base import Change, Plan, PlanStore
from confserv.store.instance import Instance
from confserv.store.leases import Lease, read_lease_plan
from confserv.store.sqlite import SqliteStore
from confserv.wire.errors import UnavailableError

from .gate import Gate, ProcessDead

#: One-way time to the database, seconds (0: answered in the same instant).
LATENCY = 0.0
#: How long a call waits for a stalled or unreachable database before it fails.
RESPONSE_TIMEOUT = 5.0


@dataclass
class _Cut:
    """A process cut off from the database until ``until``."""

    until: float
    mode: str  # refuse | hang


class SimDatabase:
    """One world's Configuration Database (see module docstring).

    ``template``: a connection whose contents are copied in (a database made
    once by ``cfgctl init``'s code, reused for every schedule).
    """

    def __init__(self, template: sqlite3.Connection | None = None) -> None:
        self.sqlite = SqliteStore(":memory:", now_sql="sim_now()")
        self.sqlite._connect()
        conn = self.sqlite._conn
        assert conn is not None
        self.conn = conn
        if template is not None:
            template.backup(conn)
        conn.create_function("sim_now", 0, self._clock)
        self._now = 0.0
        self.latency = LATENCY
        self.response_timeout = RESPONSE_TIMEOUT
        self.stalled_until = -math.inf
        self.lost_until = -math.inf
        self.cuts: dict[str, _Cut] = {}
        self._changed = trio.Event()
        #: What the database saw go wrong (see module docstring).
        self.violations: list[str] = []
        #: Whether a simulated pid runs (set by the world): proof of death is judged by it.
        self.pid_alive: Callable[[int], bool] = lambda _pid: False
        self._trap: tuple[str, Callable[[], None], bool] | None = None
        self._lock_holder: str | None = None
        #: Plans run (for statistics).
        self.calls = 0
        #: Answers lost on the way back (their plans ran).
        self.lost = 0

    def _clock(self) -> float:
        return self._now

    # -- faults -------------------------------------------------------------------

    def stall(self, duration: float) -> None:
        """The database answers nothing for ``duration`` seconds from now."""
        self.stalled_until = max(self.stalled_until, trio.current_time() + duration)

    def lose_answers(self, duration: float) -> None:
        """For ``duration`` seconds, writes run but their answers are lost."""
        self.lost_until = max(self.lost_until, trio.current_time() + duration)

    def cut_off(self, process: str, duration: float, mode: str = "refuse") -> None:
        """``process`` cannot reach the database for ``duration`` seconds."""
        self.cuts[process] = _Cut(trio.current_time() + duration, mode)

    def heal(self) -> None:
        """End every fault now."""
        self.stalled_until = self.lost_until = -math.inf
        self.cuts.clear()
        self._wake()

    # -- running plans ------------------------------------------------------------

    def pause_at_next_commit(self, process: str, pause: Callable[[], None], inside: bool) -> None:
        """Stop ``process`` (``pause``) when it next sends a commit (see module docstring)."""
        self._trap = (process, pause, inside)

    def run(self, plan: Plan, process: str = "") -> Any:
        """Run one plan now, in one transaction (the database's own moment)."""
        self._now = trio.current_time()
        self.calls += 1
        name = plan.gi_code.co_name  # type: ignore[attr-defined]
        if name == "acquire_lease_plan":
            return self._acquire(plan, process)
        result = self.sqlite.run_sync(plan)
        if name == "commit_plan" and isinstance(result, Change):
            lease = self.lease()
            if lease is not None and lease.epoch != result.epoch:
                self.violations.append(
                    f"{process} committed serial {result.serial} at epoch {result.epoch} while "
                    f"the lease was at epoch {lease.epoch} (at {self._now:.3f} s)"
                )
        return result

    def lease(self) -> Lease | None:
        """The database's lease now."""
        self._now = trio.current_time()
        lease: Lease | None = self.sqlite.run_sync(read_lease_plan())
        return lease

    def _acquire(self, plan: Plan, process: str) -> Any:
        args = plan.gi_frame.f_locals  # type: ignore[attr-defined]
        force, key = bool(args["force"]), args["holder"].key
        before = self.lease()
        result = self.sqlite.run_sync(plan)
        if before is None or not before.valid or before.holder_key == key:
            return result
        where = f"{process} took the lease at epoch {result.epoch} ({self._now:.3f} s)"
        if not force:
            self.violations.append(f"{where} without force while {before.holder} held it")
        holder = Instance.from_json(before.instance)
        if holder is not None and self.pid_alive(holder.pid):
            self.violations.append(
                f"{where} by force while {before.holder} (pid {holder.pid}) was alive and held "
                f"it for {before.remaining:.3f} s more: no proof of death"
            )
        return result

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database directly (the checker's view, outside any process)."""
        return self.conn.execute(sql, params).fetchall()

    def store(self, process: str, gate: Gate) -> SimStore:
        """The store process ``process`` opens."""
        return SimStore(self, process, gate)

    def opener(self, process: str, gate: Gate) -> Any:
        """A :data:`confserv.store.engines.StoreOpener` giving ``process`` its store."""

        @asynccontextmanager
        async def open_sim(_db: Any, _create: bool) -> AsyncIterator[SimStore]:
            await gate.wait_running()
            yield self.store(process, gate)

        return open_sim

    def process_died(self) -> None:
        """A process died: its calls waiting on a stall or a cut end now."""
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def _wait_until(self, when: float) -> None:
        """Sleep until ``when``, or until a fault ends or a process dies."""
        with trio.move_on_at(when):
            await self._changed.wait()

    async def call(self, process: str, gate: Gate, plan: Plan, write: bool) -> Any:
        """One call of ``process``: there, run, back (see module docstring)."""
        inside = False
        trap = self._trap
        if trap is not None and trap[0] == process and plan.gi_code.co_name == "commit_plan":  # type: ignore[attr-defined]
            self._trap = None
            _, pause, inside = trap
            if inside:
                self._lock_holder = process
            pause()
        try:
            return await self._call(process, gate, plan, write)
        finally:
            if inside and self._lock_holder == process:
                self._lock_holder = None
                self._wake()

    async def _call(self, process: str, gate: Gate, plan: Plan, write: bool) -> Any:
        if self._calm(process, gate):
            # The common case, one checkpoint: no fault, no latency, not paused.
            await trio.lowlevel.checkpoint()
            if self._calm(process, gate):
                result = self.run(plan, process)  # the plan's own errors travel back as they are
                if gate.paused:
                    await self._sleep(0.0, gate)
                return result
        await self._reach(gate, process)
        await self._sleep(self.latency, gate)
        if write:
            await self._locked(process, gate, plan)
        now = trio.current_time()
        if self.stalled_until > now:
            limit = now + self.response_timeout
            while self.stalled_until > trio.current_time() and trio.current_time() < limit:
                await self._wait_until(min(self.stalled_until, limit))
                _dead(gate)
            if self.stalled_until > trio.current_time():
                _dead(gate)
                plan.close()
                raise UnavailableError(
                    f"simulated database: no answer within {self.response_timeout:g} s (stalled)"
                )
        _dead(gate)  # a dead process's connection is gone: its transaction never runs
        lost = write and self.lost_until > trio.current_time()
        try:
            result = self.run(plan, process)
            error: BaseException | None = None
        except Exception as exc:  # the plan's own refusal (FencedError ...) travels back
            result, error = None, exc
        await self._sleep(self.latency, gate)
        _dead(gate)
        cut = self.cuts.get(process)
        if lost or (cut is not None and cut.until > trio.current_time()):
            self.lost += 1
            raise UnavailableError("simulated database: the connection was lost before the answer")
        await self._sleep(0.0, gate)  # a paused process reads its answer when it resumes
        if error is not None:
            raise error
        return result

    def _calm(self, process: str, gate: Gate) -> bool:
        now = trio.current_time()
        return (
            not gate.paused
            and not gate.dead
            and self.latency <= 0
            and self.stalled_until <= now
            and self.lost_until <= now
            and self._lock_holder in (None, process)
            and (not self.cuts or process not in self.cuts or self.cuts[process].until <= now)
        )

    async def _locked(self, process: str, gate: Gate, plan: Plan) -> None:
        """Wait while another process holds the write lock (SQLite's busy timeout)."""
        holder = self._lock_holder
        if holder is None or holder == process:
            return
        limit = trio.current_time() + self.response_timeout
        while self._lock_holder not in (None, process):
            if trio.current_time() >= limit:
                plan.close()
                raise UnavailableError(
                    f"simulated database: locked by {self._lock_holder} for over "
                    f"{self.response_timeout:g} s"
                )
            await self._wait_until(limit)
            _dead(gate)

    async def _reach(self, gate: Gate, process: str) -> None:
        try:
            await gate.wait_running()
        except Exception as exc:
            raise UnavailableError("simulated database: the process is dead") from exc
        cut = self.cuts.get(process)
        if cut is None or cut.until <= trio.current_time():
            return
        if cut.mode == "refuse":
            raise UnavailableError("simulated database: connection refused (cut off)")
        limit = trio.current_time() + self.response_timeout
        while (cut := self.cuts.get(process)) is not None and cut.until > trio.current_time():
            if trio.current_time() >= limit:
                raise UnavailableError(
                    f"simulated database: no answer within {self.response_timeout:g} s (cut off)"
                )
            await self._wait_until(min(cut.until, limit))
            _dead(gate)

    async def _sleep(self, seconds: float, gate: Gate) -> None:
        if seconds > 0:
            await trio.sleep(seconds)
        try:
            await gate.wait_running()
        except ProcessDead as exc:
            raise UnavailableError("simulated database: the process is dead") from exc


def _dead(gate: Gate) -> None:
    if gate.dead:
        raise UnavailableError("simulated database: the process is dead")


class SimStore(PlanStore):
    """One process's connection to the :class:`SimDatabase` (a ConfigStore)."""

    engine = "sqlite"

    def __init__(self, db: SimDatabase, process: str, gate: Gate) -> None:
        self.db = db
        self.process = process
        self.gate = gate
        self.where = "simulated database"

    async def _run(self, plan: Plan, *, write: bool = True) -> Any:
        return await self.db.call(self.process, self.gate, plan, write)

    async def aclose(self) -> None:
        """Nothing to close."""
        await trio.lowlevel.checkpoint()
