"""Configuration Server Proxy: a read cache that follows whichever master is primary.

The proxy keeps the whole configuration in memory, loaded from the primary
(``snapshot``) and kept current by the primary's change stream
(``replicate``, the same stream a backup follows). It serves reads,
subscriptions and session restores from memory, and relays writes to the
primary (``forward``), answering the client only with the primary's answer.

Following a failover: when the link to the primary ends, the proxy tries the
masters of its ``master`` list in turn, every :data:`RETRY` seconds, until
one accepts ``replicate`` (a backup refuses until promoted). Which master
and when is decided by :class:`~confserv.server.rotation.MasterRotation`; the
trio code here carries its attempts out. It then resumes
from its last serial; only when the primary's history no longer reaches back
does it reload. Reads go on being served from memory meanwhile, and writes
wait (up to :data:`WRITE_WAIT`) for the new primary. A master whose epoch is
older than what the proxy has already applied is refused.

Why a tight retry rather than a push: the proxy needs no channel to the
backup before the failover, and the retry bounds the redirect at one
interval after the promotion (the supervisor may also push a redirect).
"""

from __future__ import annotations

from typing import Any

import trio

from addp import LinkEnded
from confserv.client.session import ManagementClient, open_management
from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.core.service import ConfigService
from confserv.logs import events
from confserv.logs.eventlog import EventLog
from confserv.logs.systemd import notify
from confserv.store.base import Change, Snapshot
from confserv.wire.auth import Purpose
from confserv.wire.errors import (
    ApplyError,
    BackupModeError,
    ChangeGapError,
    ConfServError,
    ConnectionLostError,
    NoPrimaryError,
    NotSentError,
    OutcomeUnknownError,
    StaleEpochError,
)

from .ports import serve_ports
from .rotation import MasterRotation

#: Seconds between attempts to reach a primary while none is connected.
RETRY = 0.025
#: How long a relayed write waits for a primary before ``no-primary``.
WRITE_WAIT = 10.0


class ProxyFollower:
    """Follows the primary among ``settings.masters`` (see module docstring)."""

    def __init__(self, rt: Runtime, settings: ServerSettings) -> None:
        self.rt = rt
        self.settings = settings
        self.master: ManagementClient | None = None
        self.rotation = MasterRotation(settings.masters, retry=RETRY)
        self._connected = trio.Event()
        #: Set (and replaced) each time the followed master is let go.
        self._released = trio.Event()
        self.loaded = False
        self.redirects: list[float] = []  # trio.current_time() when a new primary was followed
        self._attempt: trio.CancelScope | None = None

    @property
    def master_name(self) -> str:
        """``host:port`` of the master followed now, or ""."""
        return self.rotation.following

    def redirect(self, host: str, port: int) -> None:
        """Pushed by the supervisor: follow the primary at ``host:port`` now."""
        if self.rotation.redirect(host, port) and self._attempt is not None:
            self._attempt.cancel()

    async def forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """Relay a client's write to the primary; the primary's answer fields.

        A write that was never sent, or refused by a master no longer primary,
        wrote nothing: it goes to the next primary, within one :data:`WRITE_WAIT`
        in all, then ``no-primary``.
        """
        deadline = trio.current_time() + WRITE_WAIT
        while True:
            with trio.move_on_at(deadline):
                while self.master is None:
                    await self._connected.wait()
            master = self.master
            if master is None or trio.current_time() >= deadline:
                raise NoPrimaryError(f"no primary reachable for {WRITE_WAIT:g} s; nothing written")
            try:
                answer = await master.session.request("forward", request=request)
                break
            except (NotSentError, BackupModeError):
                await master.session.link.aclose("master is not primary")
                await master.session.closed.wait()
                with trio.move_on_at(deadline):
                    while self.master is master:  # until the follower lets it go
                        await self._released.wait()
            except ConnectionLostError as exc:
                raise OutcomeUnknownError(
                    f"the primary was lost before answering: the write may or may not be "
                    f"committed ({exc})"
                ) from exc
        # Read-your-writes: answer once the change has reached this proxy's memory.
        with trio.move_on_after(WRITE_WAIT):
            await self.rt.service.wait_serial(int(answer["serial"]))
        return answer

    async def run(self) -> None:
        """Follow forever (cancelled when the proxy stops)."""
        rotation = self.rotation
        while True:
            address = rotation.next_master(trio.current_time())
            if address is None:
                deadline = rotation.next_deadline()
                assert deadline is not None  # no master now: the rotation waits
                await trio.sleep_until(deadline)
                continue
            host, port = address
            where = f"{host}:{port}"
            self._attempt = trio.CancelScope()
            lost: Exception | None = None
            try:
                with self._attempt:
                    await self._attempt_follow(host, port, where)
            except StaleEpochError as exc:
                self.rt.log.emit(events.STALE_EPOCH, reason=f"{where}: {exc}")
            except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
                lost = exc
            finally:
                if self.master is not None:
                    self.master = None
                    self._connected = trio.Event()
                    self._released.set()
                    self._released = trio.Event()
                was_following = rotation.attempt_ended(trio.current_time())
            if lost is not None and was_following:  # only the loss of a followed primary
                self.rt.log.emit(events.CONNECTION_LOST, what="primary", where=where, reason=lost)

    async def _attempt_follow(self, host: str, port: int, where: str) -> None:
        async with open_management(
            host,
            port,
            self.settings.management_secret or "",
            purpose=Purpose.MANAGEMENT,  # its master list names no servers: no expect
            addp=self.settings.addp,
            timeout=2,
            tls=self.settings.tls.client,  # encryption = true: the master's certificate verified
        ) as m:
            await self._follow(m, where)

    async def _follow(self, m: ManagementClient, where: str) -> None:
        svc = self.rt.service
        answer = await m.session.request("replicate", serial=svc.last_serial)
        if int(answer["epoch"]) < svc.epoch:
            raise StaleEpochError(
                f"{where} is at epoch {answer['epoch']}, older than {svc.epoch}: deposed"
            )
        if not self.loaded or answer.get("expired"):
            snap = await m.session.request("snapshot")
            snapshot = Snapshot(objects=list(snap["objects"]), last_serial=int(snap["serial"]))
            svc.load(snapshot, allow_older=not self.loaded)
            svc.epoch = int(snap["epoch"])
            self.loaded = True
        else:
            for wire in answer["changes"]:
                self._apply(Change.from_wire(wire))
        self.master = m
        self.rotation.followed()
        self.redirects.append(trio.current_time())
        self._connected.set()
        if self.rt.role != "proxy":
            self.rt.set_role("proxy")
        self.rt.log.emit(events.CONNECTED, what="primary", where=where)
        while True:
            push = await m.session.next_notification()
            if "notify" not in push:
                continue
            try:
                self._apply(Change.from_wire(push["notify"]))
            except ChangeGapError as exc:
                raise ConnectionLostError(f"gap in the change stream ({exc}); resuming") from exc

    def _apply(self, change: Change) -> None:
        """Apply one change; one that memory cannot take means memory is not the
        primary's: reload it whole from the primary (a fresh snapshot), never wedge."""
        try:
            self.rt.service.apply(change)
        except ApplyError as exc:
            self.rt.log.emit(events.APPLY_FAILED, reason=exc)
            self.loaded = False
            raise ConnectionLostError(f"{exc}; reloading from the primary") from exc


async def run_proxy(
    settings: ServerSettings,
    *,
    log: EventLog,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a proxy until cancelled; ``task_status`` gets its ports and runtime."""
    service = ConfigService(None, history_limit=settings.history.max_records)
    service.log_auth_with(log.emit)
    rt = Runtime(name=settings.section, pair=settings.pair or "", service=service, log=log)
    follower = ProxyFollower(rt, settings)
    rt.forward = follower.forward
    rt.redirect = follower.redirect
    log.emit(events.STARTED, name=settings.section, pid=rt.pid, engine="proxy", db="(none)")
    async with trio.open_nursery() as nursery:
        ports = await serve_ports(rt, settings, nursery)
        nursery.start_soon(follower.run)
        notify("READY=1")  # Type=notify: its ports listen
        task_status.started({**ports, "runtime": rt, "follower": follower})
