"""The supervisor lease at run time: one task drives :class:`scs.election.Election` on the database.

Thin trio code around the pure machine (its rules and bounds are in
:mod:`scs.election`): the owner task feeds it the database's answers and the
time, and carries out what it returns. Every ``ReadLease``, ``TakeLease`` and
``RenewLease`` is answered exactly once, within :attr:`SupervisorLease.ask_timeout`
(less than ``ttl - margin``), by the result or as unreachable; answers reach the
machine only through the owner's inbox, so one task ever touches it.

The supervisor asks :meth:`SupervisorLease.epoch_now` right before each command
it sends: the epoch the command carries, or :class:`~scs.launcher.NotActingError`
when it may not act. A refusal as stale (a server or agent has seen a newer
supervisor epoch) is told with :meth:`SupervisorLease.superseded`.

Each supervisor process also announces itself (row ``scs:<name>``) every
``retry`` seconds, so ``scs status`` lists the standby ones too, and a second
live process of the same name is refused (:class:`SupervisorNameTakenError`).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from confserv.logs.eventlog import EventLog
from confserv.store.instance import Instance
from confserv.store.leases import (
    Holder,
    Lease,
    SupervisorFencedError,
    SupervisorLeaseHeldError,
    SupervisorNameTakenError,
)

from . import events
from .election import (
    Action,
    BecomeActive,
    BecomeStandby,
    Mode,
    ReadLease,
    ReleaseLease,
    RenewLease,
    TakeLease,
)
from .launcher import NotActingError
from .redundancy import RedundancySpec

if TYPE_CHECKING:
    from confserv.store.base import ConfigStore

__all__ = ["SupervisorLease", "SupervisorNameTakenError"]

#: What the owner task is handed: a step of the machine at the time it runs.
_Step = Callable[[float], list[Action]]


class SupervisorLease:
    """One supervisor process's side of the election, against the real database.

    Args:
        spec: ``[scs] database`` and the lease's timings.
        name: this supervisor's name (``scs --name``), the lease's holder.
        log: where its events go.
        control_port: told in its instance, for ``scs status``.
        on_change: called (synchronously, in the owner task) with each
            :class:`BecomeActive` and :class:`BecomeStandby`.
    """

    def __init__(
        self,
        spec: RedundancySpec,
        name: str,
        log: EventLog,
        *,
        control_port: int | None = None,
        on_change: Callable[[BecomeActive | BecomeStandby], None] | None = None,
    ) -> None:
        self.spec, self.name, self.log = spec, name, log
        self.holder = Holder(name, Instance.this_process(port=control_port or 0))
        self.address = f"{socket.gethostname()}:{control_port}" if control_port else ""
        self.election = spec.election(self.holder.key)
        self.on_change = on_change
        #: Each database request's bound: half of what is left of the lease after a
        #: renewal is due, so a renewal that hangs is timed out and retried once before
        #: the active must stop (ttl / 2 left no time for a retry: helper 19's finding).
        margin = self.election.margin
        self.ask_timeout = max(
            0.05, min(spec.database.response_timeout, (spec.ttl - margin - spec.renew) / 2)
        )
        #: The supervisor lease as last seen (read, taken or renewed).
        self.lease: Lease | None = None
        #: The supervisors that announced themselves, as last listed.
        self.supervisors: list[Lease] = []
        self.store: ConfigStore | None = None
        self._unreachable: str | None = None  # why, while the database does not answer
        self._told_standby: tuple[str, int] | None = None
        self._inbox: trio.MemorySendChannel[_Step] | None = None
        self._nursery: trio.Nursery | None = None
        self._finished = trio.Event()
        self._release_epoch: int | None = None

    # -- what the supervisor consults --------------------------------------------

    def acting(self) -> bool:
        """Whether this supervisor may send a command now."""
        return self.election.acting(trio.current_time())

    def epoch_now(self) -> int:
        """The supervisor epoch a command sent now carries; NotActingError when none may be."""
        if not self.acting():
            raise NotActingError(f"supervisor '{self.name}' is not acting (standby)")
        return self.election.epoch

    def superseded(self, newest: int) -> None:
        """A server or agent refused a command as coming from an older supervisor epoch."""
        self._hand(lambda now: self.election.superseded(newest, now))

    def describe(self) -> dict[str, Any]:
        """This supervisor and the others, for ``scs status``."""
        lease, active = self.lease, ""
        holder: dict[str, Any] | None = None
        if lease is not None and lease.valid:
            active = lease.holder_key
            holder = {"name": lease.holder, "epoch": lease.epoch, "process": lease.process}
        return {
            "name": self.name,
            "mode": self.election.mode.value,
            "acting": self.acting(),
            "epoch": self.election.epoch if self.election.mode is Mode.ACTIVE else None,
            "active": holder,
            "database": None if self._unreachable is None else f"unreachable: {self._unreachable}",
            "supervisors": [
                {
                    "name": s.holder,
                    "process": s.process,
                    "address": s.address,
                    "mode": "active" if s.holder_key == active else "standby",
                }
                for s in self.supervisors
            ],
        }

    # -- running -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take part in the election until cancelled, or until :meth:`resign` is done.

        Raises SupervisorNameTakenError when another live supervisor has this name."""
        send, receive = trio.open_memory_channel[_Step](math.inf)
        self._inbox = send
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._keep_store)
            nursery.start_soon(self._announce)
            self._carry_out(self.election.start(trio.current_time()))
            task_status.started()
            while not (
                self.election.mode is Mode.STOPPED and self.election.next_deadline() is None
            ):
                deadline = self.election.next_deadline()
                step: _Step | None = None
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    step = await receive.receive()
                now = trio.current_time()
                self._carry_out(step(now) if step is not None else self.election.tick(now))
                if self._release_epoch is not None:  # the last act: awaited, then done
                    epoch, self._release_epoch = self._release_epoch, None
                    await self._release(epoch)
            # stopped and released: the presence goes too
            with trio.move_on_after(self.ask_timeout):
                if self.store is not None:
                    await self.store.withdraw_supervisor(self.holder)
            self._finished.set()
            nursery.cancel_scope.cancel()

    async def resign(self) -> None:
        """Stop acting now and give the lease up ``margin`` later (a planned stop), then
        return; :meth:`run` returns too. Bounded by the margin and one database request."""
        self._hand(self.election.stop)
        with trio.move_on_after(self.election.margin + self.ask_timeout + 0.5):
            await self._finished.wait()

    def _hand(self, step: _Step) -> None:
        if self._inbox is not None:
            self._inbox.send_nowait(step)

    def _carry_out(self, actions: list[Action]) -> None:
        assert self._nursery is not None
        for action in actions:
            if isinstance(action, (ReadLease, TakeLease, RenewLease)):
                self._nursery.start_soon(self._ask, action)
            elif isinstance(action, ReleaseLease):
                self._release_epoch = action.epoch
            elif isinstance(action, BecomeActive):
                self._told_standby = None
                self.log.emit(events.SUPERVISOR_ACTIVE, name=self.name, epoch=action.epoch)
                if self.on_change is not None:
                    self.on_change(action)
            elif isinstance(action, BecomeStandby):
                self.log.emit(
                    events.SUPERVISOR_LOST,
                    name=self.name,
                    epoch=self.election.epoch,
                    reason=action.reason,
                )
                if self.on_change is not None:
                    self.on_change(action)

    # -- the database ----------------------------------------------------------------

    async def _keep_store(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Keep the database open; while it cannot be opened, every ask is unreachable."""
        # (imported here: the store's tables cost SQLAlchemy, which `scs status` never needs)
        from confserv.store.engines import open_store

        started = False
        while True:
            try:
                async with open_store(self.spec.database) as store:
                    self.store = store
                    if not started:
                        started = True
                        task_status.started()
                    await trio.sleep_forever()
            except Exception as exc:  # any failure to open: the election hears "unreachable"
                self.store = None
                self._unreached(exc)
            if not started:
                started = True
                task_status.started()
            await trio.sleep(self.spec.retry)

    async def _ask(self, action: ReadLease | TakeLease | RenewLease) -> None:
        """Carry out one ask and hand its one answer to the owner task."""
        ask, election = action.ask, self.election
        answer: _Step | None = None
        with trio.move_on_after(self.ask_timeout) as bound:
            try:
                answer = await self._answer(action)
                if not isinstance(action, ReadLease):
                    # Back only once a write is answered: with only the write answers
                    # lost, a read's answer told "back" at every retry (40704 and 40705
                    # alternating; found by the simulation).
                    self._reached()
            except Exception as exc:  # a database failure of any kind is "unreachable"
                self._unreached(exc)
        if bound.cancelled_caught:
            self._unreached(TimeoutError(f"no answer within {self.ask_timeout:g} s"))
        if answer is None:
            self._hand(lambda now: election.unreachable(ask, now))
        else:
            self._hand(answer)

    async def _answer(self, action: ReadLease | TakeLease | RenewLease) -> _Step:
        store, election, ask = self.store, self.election, action.ask
        if store is None:
            raise ConnectionError("the database is not open")
        if isinstance(action, RenewLease):
            try:
                self.lease = await store.renew_supervisor_lease(
                    self.holder, action.epoch, self.spec.ttl
                )
                return lambda now: election.renewed(ask, now)
            except SupervisorFencedError:
                self.lease = await store.read_supervisor_lease()
                holder = self.lease.holder if self.lease is not None else None
                return lambda now: election.fenced(ask, holder, now)
        if isinstance(action, TakeLease):
            try:
                self.lease = lease = await store.acquire_supervisor_lease(
                    self.holder, self.spec.ttl, self.address
                )
                return lambda now: election.taken(ask, lease.epoch, now)
            except SupervisorLeaseHeldError:
                pass  # held after all: what the read says
        self.lease = seen = await store.read_supervisor_lease()
        self._standby_line(seen)
        if seen is None:
            return lambda now: election.lease_seen(ask, "", 0, 0.0, now)
        key, epoch, remaining = seen.holder_key, seen.epoch, seen.remaining
        return lambda now: election.lease_seen(ask, key, epoch, remaining, now)

    def _standby_line(self, seen: Lease | None) -> None:
        """One 40702 line per holder and epoch seen while standby."""
        if seen is None or not seen.valid or seen.holder_key == self.holder.key:
            return
        if self._told_standby == (seen.holder_key, seen.epoch):
            return
        self._told_standby = (seen.holder_key, seen.epoch)
        holder = f"'{seen.holder}' ({seen.process})"
        self.log.emit(events.SUPERVISOR_STANDBY, name=self.name, holder=holder, epoch=seen.epoch)

    async def _release(self, epoch: int) -> None:
        with trio.move_on_after(self.ask_timeout):
            try:
                if self.store is not None:
                    await self.store.release_supervisor_lease(self.holder, epoch)
                    self.log.emit(events.SUPERVISOR_RELEASED, name=self.name, epoch=epoch)
            except Exception as exc:  # not released: it expires by itself
                self._unreached(exc)

    async def _announce(self) -> None:
        """Say every ``retry`` seconds that this supervisor lives; list the others."""
        ttl = 3 * self.spec.retry + self.ask_timeout
        while True:
            store = self.store
            if store is not None:
                with trio.move_on_after(self.ask_timeout):
                    try:
                        await store.announce_supervisor(self.holder, ttl, self.address)
                        self._reached()
                        self.supervisors = await store.list_supervisors()
                    except SupervisorNameTakenError:
                        raise
                    except Exception as exc:  # told by the election's asks too
                        self._unreached(exc)
            await trio.sleep(self.spec.retry)

    def _unreached(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        if self._unreachable is None:
            self.log.emit(events.SUPERVISOR_DB_UNREACHABLE, name=self.name, reason=reason)
        self._unreachable = reason

    def _reached(self) -> None:
        if self._unreachable is not None:
            self._unreachable = None
            self.log.emit(events.SUPERVISOR_DB_BACK, name=self.name)
