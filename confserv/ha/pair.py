"""The warm-standby pair at run time: carries out the role machine's actions, follows the primary.

:class:`PairDriver` feeds :class:`~confserv.ha.roles.RoleMachine` the results of
lease operations and the time, and carries out what it decides. As backup it
runs :func:`follow_primary`: connect to the primary's management port (the
lease row says where it is), ask to ``replicate`` from our last serial, and
apply every change it streams; a gap is closed from the History Log in the
database, and an older epoch is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from addp import LinkEnded
from confserv.client.session import open_management
from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.logs import events
from confserv.store.base import Change, ConfigStore, Holder, Lease
from confserv.store.instance import Instance
from confserv.wire.errors import (
    ApplyError,
    ChangeGapError,
    ClaimLostError,
    ConfServError,
    FencedError,
    LeaseHeldError,
    PromotionRefusedError,
    RequestError,
    StaleEpochError,
    UnavailableError,
)

from .peer_options import check_options
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

#: Seconds between a backup's attempts to reach the primary.
FOLLOW_RETRY = 0.05


def parse_address(address: str) -> tuple[str, int, int] | None:
    """``host:port:management-port`` -> its parts, or None."""
    host, _, rest = address.rpartition(":")
    host, _, port = host.rpartition(":")
    if not host or not port.isdigit() or not rest.isdigit():
        return None
    return host, int(port), int(rest)


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
        self.machine = RoleMachine(
            self.holder.key, ttl=settings.lease_ttl, renew=settings.lease_renew
        )
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self._follower: trio.CancelScope | None = None
        self.last_refusal = "another server holds a valid lease"
        self._nursery: trio.Nursery | None = None

    # -- running --------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Decide the role at start, then keep the lease (or follow) until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._keep_claim)
            await self._execute(self.machine.start)
            task_status.started()
            while True:
                deadline = self.machine.next_deadline()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self._execute(lambda: self.machine.tick(trio.current_time()))

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

    async def promote(self, force: bool) -> dict[str, Any]:
        """``switch-to-primary``: take the lease (``force`` only with proof of death)."""
        await self._execute(lambda: self.machine.promote(force=force))
        self._wake.set()
        if self.machine.role is not Role.PRIMARY:
            raise PromotionRefusedError(f"not promoted: {self.last_refusal}")
        return self.rt.status()

    async def demote(self, force: bool = False) -> dict[str, Any]:
        """``switch-to-backup``: let in-flight writes finish, release the lease, follow."""
        async with self.rt.service.write_lock:
            await self._execute(self.machine.demote)
        self._wake.set()
        return self.rt.status()

    def peer_ack(self) -> None:
        """The backup acknowledged us (failsafe evidence)."""
        self.machine.peer_ack(trio.current_time())

    # -- carrying out actions -------------------------------------------------

    async def _execute(self, decide: Callable[[], list[Action]]) -> None:
        """Ask the machine (``decide``) and carry out what it says, under one lock: the
        machine is never asked while an earlier decision is still being carried out."""
        async with self._lock:
            actions = decide()
            while actions:
                action = actions.pop(0)
                actions.extend(await self._one(action))

    async def _one(self, action: Action) -> list[Action]:
        m, holder = self.machine, self.holder
        if isinstance(action, ReadLease):
            lease = await self.store.read_lease()
            if lease is None or not lease.valid or lease.holder_key == holder.key:
                return m.lease_read("", False)
            self.rt.primary_hint = _client_address(lease.address)
            dead = _known_dead(lease)  # it ran on this host and is gone: proof of death
            if dead:
                self.rt.log.emit(
                    events.HOLDER_DEAD, app=lease.holder, process=lease.process, epoch=lease.epoch
                )
            return m.lease_read(lease.holder_key, True, holder_dead=dead)
        if isinstance(action, TakeLease):
            sent = trio.current_time()
            try:
                lease = await self.store.acquire_lease(
                    holder, self.settings.lease_ttl, force=action.force, address=self.address
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
            try:
                await self.store.renew_lease(holder, action.epoch, self.settings.lease_ttl)
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
                await self.store.release_lease(holder, action.epoch)
            except RequestError as exc:
                self.rt.log.emit(events.DB_ERROR, reason=f"releasing the lease failed: {exc}")
            return []
        if isinstance(action, BecomePrimary):
            try:
                await self._become_primary(action.epoch)
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


async def follow_primary(
    rt: Runtime, store: ConfigStore, settings: ServerSettings, holder_key: str
) -> None:
    """As backup: replicate from whoever holds the lease, forever (cancelled on promotion)."""
    svc = rt.service
    secret = settings.management_secret or ""
    while True:
        lease = await _read_lease(rt, store)
        target = parse_address(lease.address) if lease is not None else None
        if lease is None or target is None or not lease.valid or lease.holder_key == holder_key:
            await trio.sleep(FOLLOW_RETRY)
            continue
        rt.primary_hint = f"{target[0]}:{target[1]}"
        where = f"{target[0]}:{target[2]}"
        try:
            async with open_management(
                target[0], target[2], secret, addp=settings.addp, timeout=5
            ) as m:
                rt.log.emit(events.CONNECTED, what=f"primary '{lease.holder}'", where=where)
                extra = {} if rt.options is None else {"options": rt.options}
                answer = await m.session.request("replicate", serial=svc.last_serial, **extra)
                if "options" in answer:
                    check_options(rt, f"the primary '{lease.holder}'", answer["options"])
                await _apply_all(rt, store, [Change.from_wire(c) for c in answer["changes"]])
                if answer.get("expired"):
                    await svc.catch_up()
                next_ack = trio.current_time()
                while True:
                    if trio.current_time() >= next_ack:  # acks go out on a busy stream too
                        with trio.fail_after(settings.lease_renew * 2):
                            await m.session.request("ack", serial=svc.last_serial)
                        next_ack = trio.current_time() + settings.lease_renew
                    with trio.move_on_at(next_ack):
                        push = await m.session.next_notification()
                        if "notify" in push:
                            await _apply_all(rt, store, [Change.from_wire(push["notify"])])
        except StaleEpochError as exc:
            rt.log.emit(events.STALE_EPOCH, reason=exc)
        except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
            rt.log.emit(
                events.CONNECTION_LOST, what=f"primary '{lease.holder}'", where=where, reason=exc
            )
        await trio.sleep(FOLLOW_RETRY)


async def _read_lease(rt: Runtime, store: ConfigStore) -> Lease | None:
    try:
        return await store.read_lease()
    except UnavailableError as exc:
        rt.log.emit(events.DB_ERROR, reason=f"reading the lease failed: {exc}")
        return None


async def _apply_all(rt: Runtime, store: ConfigStore, changes: list[Change]) -> None:
    svc = rt.service
    for change in changes:
        try:
            try:
                svc.apply(change)
            except ChangeGapError:
                await svc.catch_up()  # closes the gap from the History Log in the database
                svc.apply(change)
        except ApplyError as exc:
            await svc.reload_after(exc)  # memory was not the database's: reload, go on
