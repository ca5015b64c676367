"""The warm-standby pair at run time: one task owns the role machine and carries out its actions.

:class:`PairDriver` feeds :class:`~confserv.ha.roles.RoleMachine` the results of
lease operations and the time, and carries out what it decides. The machine
has one owner, the task in :meth:`PairDriver.run`: it alone asks the machine
anything and carries out the answer. Every other task (the management port's
``switch-to-primary`` and ``switch-to-backup``, the backup's acknowledgements)
*sends* the owner a command (:class:`Promote`, :class:`Demote`,
:class:`PeerAck`) and, where there is one, waits for its answer. The owner
takes commands one at a time, between decisions: a command never interrupts a
decision being carried out. An acknowledgement that arrives while the owner is
waiting on the database still counts at the time it arrived: the owner reads
the ones waiting before it tells the machine how the database answered.

As backup, the owner starts :func:`~confserv.ha.replication.follow_primary`
(the backup's replication stream), and cancels it on promotion.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.logs import events
from confserv.store.base import ConfigStore, Holder, Lease
from confserv.store.instance import Instance
from confserv.wire.errors import (
    ClaimLostError,
    FencedError,
    LeaseHeldError,
    PairStoppedError,
    PromotionRefusedError,
    RequestError,
    UnavailableError,
)

from .follower import parse_address
from .replication import FOLLOW_RETRY, follow_primary
from .roles import (
    Action,
    BecomeBackup,
    BecomePrimary,
    ReadLease,
    ReleaseLease,
    RenewLease,
    Role,
    RoleMachine,
    StopWrites,
    TakeLease,
)

T = TypeVar("T")

__all__ = ["FOLLOW_RETRY", "Demote", "PairDriver", "PairStoppedError", "PeerAck", "Promote"]


@dataclass(eq=False)
class Reply:
    """The answer to one command, set once by the owner task."""

    done: trio.Event = field(default_factory=trio.Event)
    refusal: str | None = None
    error: RequestError | None = None

    def answer(self, refusal: str | None = None) -> None:
        """The owner carried the command out (``refusal``: why it did not happen)."""
        self.refusal = refusal
        self.done.set()

    def fail(self, error: RequestError) -> None:
        """The command could not be carried out at all."""
        self.error = error
        self.done.set()

    async def wait(self) -> str | None:
        """Wait for the answer: the refusal, or None when done."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.refusal


@dataclass(frozen=True, eq=False)
class Promote:
    """Command: switch to primary (``force`` only with proof of death of the holder
    at epoch ``over``, when given)."""

    force: bool
    reply: Reply
    over: int | None = None


@dataclass(frozen=True, eq=False)
class Demote:
    """Command: planned hand-over to backup."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class PeerAck:
    """Command: the backup acknowledged this server as primary at ``at``."""

    at: float


Command = Promote | Demote | PeerAck


class PairDriver:
    """Runs one server's role in its pair (see module docstring)."""

    def __init__(
        self,
        rt: Runtime,
        store: ConfigStore,
        settings: ServerSettings,
        address: str,
        holder: Holder | None = None,
    ) -> None:
        self.rt = rt
        self.store = store
        self.settings = settings
        self.address = address
        self.holder = holder or Holder(settings.section, Instance.this_process())
        #: Owned by the task in :meth:`run`; other tasks may read it, never ask it.
        self.machine = RoleMachine(
            self.holder.key, ttl=settings.lease_ttl, renew=settings.lease_renew
        )
        self._send, self._commands = trio.open_memory_channel[Command](math.inf)
        self._waiting: deque[Command] = deque()  # taken off the channel, not yet handled
        self._current: Promote | Demote | None = None
        self._follower: trio.CancelScope | None = None
        self.last_refusal = "another server holds a valid lease"
        self._nursery: trio.Nursery | None = None

    # -- running: the owner task ----------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Decide the role at start, then keep the lease (or follow) until cancelled.

        This task is the machine's only owner: it decides at the machine's
        deadlines and on each command, one decision at a time.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._keep_claim)
                await self._carry_out(self.machine.start())
                task_status.started()
                while True:
                    command = await self._next_command()
                    if command is None:
                        await self._carry_out(self.machine.tick(trio.current_time()))
                    else:
                        await self._handle(command)
        finally:
            self._close()

    async def _next_command(self) -> Command | None:
        """The next command, or None when the machine's deadline comes first."""
        if self._waiting:
            return self._waiting.popleft()
        deadline = self.machine.next_deadline()
        with trio.move_on_at(math.inf if deadline is None else deadline):
            return await self._commands.receive()
        return None

    async def _handle(self, command: Command) -> None:
        m = self.machine
        if isinstance(command, PeerAck):
            m.peer_ack(command.at)
            return
        self._current = command  # answered by _close if this task is cancelled meanwhile
        if isinstance(command, Promote):
            await self._carry_out(m.promote(force=command.force, over=command.over))
            command.reply.answer(None if m.role is Role.PRIMARY else self.last_refusal)
        else:
            await self._carry_out(m.demote())
            command.reply.answer()
        self._current = None

    def _close(self) -> None:
        """The owner is gone: refuse every command still waiting."""
        self._send.close()
        stopped = PairStoppedError("the server is stopping: its pair driver no longer runs")
        while True:
            try:
                self._waiting.append(self._commands.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if self._current is not None and not self._current.reply.done.is_set():
            self._current.reply.fail(stopped)
        for command in self._waiting:
            if not isinstance(command, PeerAck):
                command.reply.fail(stopped)
        self._waiting.clear()
        self._commands.close()

    def _take_acks(self) -> None:
        """Before the machine hears a result: the acknowledgements sent meanwhile
        (other commands wait their turn, in order)."""
        while True:
            try:
                command = self._commands.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if isinstance(command, PeerAck):
                self.machine.peer_ack(command.at)
            else:
                self._waiting.append(command)

    async def _keep_claim(self) -> None:
        """Renew this process's claim on its Application; another process took it
        (this one was stopped longer than its claim lasts): stop at once."""
        ttl = self.settings.lease_ttl
        while True:
            await trio.sleep(self.settings.lease_renew)
            try:
                await self.store.renew_claim(self.holder, ttl)
            except UnavailableError as exc:
                self.rt.log.emit(events.DB_ERROR, reason=f"renewing the claim failed: {exc}")
            except ClaimLostError as exc:
                self.rt.log.emit(events.CLAIM_LOST, reason=exc)
                self.rt.service.halt(str(exc))
                if self.rt.stop is not None:
                    self.rt.stop(str(exc))
                return

    # -- commands, from any task ----------------------------------------------

    async def _ask(self, command: Promote | Demote) -> str | None:
        try:
            self._send.send_nowait(command)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise PairStoppedError(
                "the server is stopping: its pair driver no longer runs"
            ) from None
        return await command.reply.wait()

    async def promote(self, force: bool, over: int | None = None) -> dict[str, Any]:
        """``switch-to-primary``: take the lease (``force`` only with proof of death of
        the holder at epoch ``over``: a lease that moved on since is not overridden)."""
        refusal = await self._ask(Promote(force, Reply(), over))
        if refusal is not None:
            raise PromotionRefusedError(f"not promoted: {refusal}")
        return self.rt.status()

    async def demote(self, force: bool = False) -> dict[str, Any]:
        """``switch-to-backup``: let in-flight writes finish, release the lease, follow."""
        async with self.rt.service.write_lock:
            await self._ask(Demote(Reply()))
        return self.rt.status()

    def peer_ack(self) -> None:
        """The backup acknowledged us (failsafe evidence), now."""
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait(PeerAck(trio.current_time()))  # stopping: no role to keep

    # -- carrying out actions -------------------------------------------------

    async def _carry_out(self, actions: list[Action]) -> None:
        """Carry out the machine's actions, and what it answers to each result, in order."""
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            pending.extend(await self._one(action))

    async def _db(self, operation: Awaitable[T]) -> T:
        """Await a database operation; then, before the machine hears how it went, the
        acknowledgements that came meanwhile (they count from when they arrived)."""
        try:
            return await operation
        finally:
            self._take_acks()

    async def _one(self, action: Action) -> list[Action]:
        """Carry out one action; the machine's answer to its result."""
        m, holder = self.machine, self.holder
        if isinstance(action, ReadLease):
            lease = await self._db(self.store.read_lease())
            if lease is None or not lease.valid or lease.holder_key == holder.key:
                return m.lease_read("", False)
            self.rt.primary_hint = _client_address(lease.address)
            dead = _known_dead(lease)  # it ran on this host and is gone: proof of death
            if dead:
                self.rt.log.emit(
                    events.HOLDER_DEAD, app=lease.holder, process=lease.process, epoch=lease.epoch
                )
            return m.lease_read(lease.holder_key, True, holder_dead=dead, epoch=lease.epoch)
        if isinstance(action, TakeLease):
            sent = trio.current_time()
            try:
                lease = await self._db(
                    self.store.acquire_lease(
                        holder,
                        self.settings.lease_ttl,
                        force=action.force,
                        address=self.address,
                        over=action.over,
                    )
                )
            except LeaseHeldError as exc:
                self.rt.log.emit(events.PROMOTION_REFUSED, reason=exc)
                self.last_refusal = f"'{exc.holder}' holds a valid lease at epoch {exc.epoch}"
                return m.lease_refused(exc.holder)
            except UnavailableError as exc:
                self.rt.log.emit(events.DB_ERROR, reason=f"taking the lease failed: {exc}")
                self.last_refusal = f"the database is unreachable ({exc})"
                return m.lease_refused("")
            how = ", forced" if action.force else ""
            self.rt.log.emit(
                events.LEASE_TAKEN, epoch=lease.epoch, ttl=self.settings.lease_ttl, how=how
            )
            return m.lease_taken(lease.epoch, sent, trio.current_time())
        if isinstance(action, RenewLease):
            sent = trio.current_time()
            # A renewal still unanswered when writes must stop (a silent database) is
            # given up then: the owner must be free to self-fence on time.
            fence_at = m.good_until - m.margin if m.writable else math.inf
            try:
                with trio.move_on_at(fence_at) as unanswered:
                    await self._db(
                        self.store.renew_lease(holder, action.epoch, self.settings.lease_ttl)
                    )
                if unanswered.cancelled_caught:
                    self.rt.log.emit(
                        events.DB_ERROR,
                        reason="lease renewal unanswered when the lease may run out: writes stop",
                    )
                    return m.db_unreachable(trio.current_time())
            except FencedError as exc:
                if action.epoch == m.epoch:
                    self.rt.log.emit(events.LEASE_LOST, epoch=action.epoch, reason=exc)
                return m.renew_fenced(action.epoch, str(exc))
            except UnavailableError as exc:
                self.rt.log.emit(events.DB_ERROR, reason=f"lease renewal failed: {exc}")
                return m.db_unreachable(trio.current_time())
            return m.renewed(action.epoch, sent, trio.current_time())
        if isinstance(action, ReleaseLease):
            try:
                await self._db(self.store.release_lease(holder, action.epoch))
            except RequestError as exc:
                self.rt.log.emit(events.DB_ERROR, reason=f"releasing the lease failed: {exc}")
            return []
        if isinstance(action, BecomePrimary):
            try:
                await self._db(self._become_primary(action.epoch))
            except UnavailableError as exc:
                # Holding the lease without serving would block the pair until it
                # expired: give it back, turn backup, let the supervisor retry. (Also
                # when writes resume after a database outage and the catch-up fails:
                # the database is flapping, and the peer may do better.)
                self.rt.log.emit(
                    events.DB_ERROR,
                    reason=f"catching up after taking the lease failed: {exc}; "
                    "giving the lease back",
                )
                self.last_refusal = f"catching up from the database failed ({exc})"
                return m.demote("promotion abandoned: catching up from the database failed")
            return []
        if isinstance(action, BecomeBackup):
            self._become_backup(action.reason)
            return []
        assert isinstance(action, StopWrites)
        self.rt.service.writable = False
        self.rt.log.emit(events.WRITES_STOPPED, reason=action.reason)
        return []

    async def _become_primary(self, epoch: int) -> None:
        svc = self.rt.service
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        applied = await svc.catch_up()
        old = self.rt.role
        svc.epoch = epoch
        svc.writable = self.machine.writable  # false until a late take is renewed
        self.rt.primary_hint = None
        if old != "primary":
            self.rt.log.emit(
                events.ROLE_CHANGED,
                old=old,
                new="primary",
                epoch=epoch,
                reason=f"lease taken; {applied if applied >= 0 else 'full reload,'} "
                f"changes applied from the History Log up to serial {svc.last_serial}",
            )
        self.rt.set_role("primary")

    def _become_backup(self, reason: str) -> None:
        old = self.rt.role
        self.rt.service.writable = False
        if old != "backup":
            self.rt.log.emit(
                events.ROLE_CHANGED,
                old=old,
                new="backup",
                epoch=self.rt.service.epoch,
                reason=reason,
            )
        self.rt.set_role("backup")
        if self._follower is None and self._nursery is not None:
            scope = trio.CancelScope()
            self._follower = scope
            self._nursery.start_soon(self._follow, scope)

    async def _follow(self, scope: trio.CancelScope) -> None:
        with scope:
            await follow_primary(self.rt, self.store, self.settings, self.holder.key)


def _known_dead(lease: Lease) -> bool:
    inst = Instance.from_json(lease.instance)
    return inst is not None and inst.known_dead()


def _client_address(address: str) -> str | None:
    parts = parse_address(address)
    return None if parts is None else f"{parts[0]}:{parts[1]}"
