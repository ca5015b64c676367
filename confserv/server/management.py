"""The management port: mutual authentication, status, role commands.

On connect the server sends its challenge and the client must authenticate
within ``auth-timeout`` seconds with the ``cfgha-mgmt-v2`` scheme of
:mod:`confserv.wire.auth` (both sides prove they know ``management-secret``;
the secret never crosses the wire). Anything else before that, a wrong
proof, or the deadline passing: one ``auth-failed`` answer (or none, at the
deadline), one alarm line, and the connection is closed.
"""

from __future__ import annotations

from typing import Any, Protocol
from weakref import WeakKeyDictionary

import trio

from addp import LinkEnded
from addp.transport import Link
from confserv.core.access_checks import (
    authorize,
    log_denied,
    no_default_access,
    resolve,
    with_default_access,
)
from confserv.core.fanout import Subscription
from confserv.core.runtime import Runtime
from confserv.core.service import ConfigService
from confserv.core.supervisor_fence import SupervisorFence
from confserv.ha.peer_options import check_options
from confserv.logs import events
from confserv.wire.auth import (
    DEFAULT_AUTH_TIMEOUT,
    HandshakeError,
    Purpose,
    ServerHandshake,
    WrongProofError,
)
from confserv.wire.errors import (
    BackupModeError,
    BadRequestError,
    HistoryExpiredError,
    PermissionDeniedError,
    RequestError,
    StaleSupervisorError,
)
from confserv.wire.messages import MANAGEMENT_OPS, READ_CHUNK, arg, error, ok, parse_request

from .auth_deadline import close_at_auth_deadline
from .read_chunks import chunker_for

#: Operations too frequent or too plain to log (polls, keep-alives, relayed writes).
_QUIET_OPS = frozenset({"status", "ack", "watch", "forward"})


class _ServerFence:
    """One server's supervisor fence, and the lock that carries out its role commands
    one at a time: each is admitted and done before the next is admitted, so an older
    supervisor's ``switch-to-backup`` held up by a write cannot overtake a newer one."""

    def __init__(self) -> None:
        self.fence = SupervisorFence()
        self.lock = trio.Lock()


#: Each running server's, shared by its management sessions (keyed by its service:
#: one per server; Runtime, a dataclass, is not hashable).
_FENCES: WeakKeyDictionary[ConfigService, _ServerFence] = WeakKeyDictionary()


def _server_fence(rt: Runtime) -> _ServerFence:
    found = _FENCES.get(rt.service)
    if found is None:
        found = _FENCES[rt.service] = _ServerFence()
    return found


def supervisor_fence(rt: Runtime) -> SupervisorFence:
    """The newest supervisor epoch ``rt``'s server has seen, and the rule on it."""
    return _server_fence(rt).fence


class PairHooks(Protocol):
    """What the management port needs of the pair driver."""

    async def promote(self, force: bool, over: int | None = None) -> dict[str, Any]:
        """``switch-to-primary`` (``over``: force only over the lease at that epoch)."""

    async def demote(self, force: bool = False) -> dict[str, Any]:
        """``switch-to-backup``."""

    def peer_ack(self) -> None:
        """The backup acknowledged this server as primary."""


class ManagementSession:
    """One connection on the management port."""

    def __init__(
        self,
        link: Link,
        runtime: Runtime,
        secret: str | None,
        pair: PairHooks | None = None,
        *,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
    ) -> None:
        self.link = link
        self.rt = runtime
        self.secret = secret
        self.pair = pair
        self.peer = link.name
        self.handshake = ServerHandshake(
            Purpose.MANAGEMENT,
            secret,
            runtime.name,
            now=trio.current_time(),
            timeout=auth_timeout,
        )
        self.watching = False
        self._fenced = _server_fence(runtime)
        self.fence = self._fenced.fence

    def _status(self) -> dict[str, Any]:
        """The ``status`` fields, with the newest supervisor epoch seen."""
        return {**self.rt.status(), "supervisor_epoch": self.fence.newest}

    @staticmethod
    def _supervisor_epoch(msg: dict[str, Any]) -> int | None:
        """The command's ``supervisor_epoch`` argument (an int >= 0), or None."""
        epoch: int | None = arg(msg, "supervisor_epoch", int, None)
        if epoch is not None and epoch < 0:
            raise BadRequestError(f"argument 'supervisor_epoch' must be 0 or more, got {epoch}")
        return epoch

    def _admit(self, op: str, epoch: int | None) -> None:
        """Check a supervisor command's epoch against the fence: a
        ``StaleSupervisorError`` when older than the newest seen (nothing done)."""
        was = self.fence.newest
        self.fence.admit(epoch)
        if self.fence.newest != was:
            self.rt.log.emit(
                events.SUPERVISOR_EPOCH_SEEN, epoch=epoch, command=op, peer=self.peer, was=was
            )
        if epoch is not None:  # who acted at which epoch: a checker's and an operator's record
            self.rt.log.emit(
                events.SUPERVISOR_COMMAND_ADMITTED, command=op, peer=self.peer, epoch=epoch
            )

    @property
    def authenticated(self) -> bool:
        """Whether the client has authenticated."""
        return self.handshake.authenticated

    async def run(self) -> None:
        """Serve the connection until it ends, authentication fails or its deadline passes."""
        await self.link.send(self.handshake.challenge())
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(
                close_at_auth_deadline,
                self.handshake,
                self.link,
                lambda why: self.rt.log.emit(events.MGMT_AUTH_FAILED, peer=self.peer, reason=why),
                nursery.cancel_scope,
            )
            try:
                async for msg in self.link:
                    if not await self._handle(msg):
                        break
            except LinkEnded:
                pass
            nursery.cancel_scope.cancel()

    async def _refuse(self, rid: Any, exc: HandshakeError) -> bool:
        """One refusal before authentication: one alarm line, one answer, then close."""
        self.rt.log.emit(events.MGMT_AUTH_FAILED, peer=self.peer, reason=str(exc))
        await self.link.send(error(rid, exc))
        await self.link.aclose(f"authentication failed: {exc}")
        return False

    async def _handle(self, msg: Any) -> bool:
        request_id = msg.get("id") if isinstance(msg, dict) else None
        try:
            op, request_id = parse_request(msg, MANAGEMENT_OPS)
        except RequestError as exc:
            if not self.authenticated:
                first = HandshakeError("authenticate first: the first request must be 'auth'")
                return await self._refuse(request_id, first)
            await self.link.send(error(request_id, exc))
            return True
        try:
            if op == "auth":
                return await self._auth(msg, request_id)
            try:
                self.handshake.command(op)
            except HandshakeError as exc:
                return await self._refuse(request_id, exc)
            if op not in _QUIET_OPS:
                self.rt.log.emit(events.MGMT_COMMAND, command=op, peer=self.peer)
            if op == "status":
                answer = ok(request_id, **self._status())
            elif op == "watch":
                if not self.watching:
                    self.watching = True
                    self._nursery.start_soon(self._push_roles)
                answer = ok(request_id, **self._status())
            elif op == "replicate":
                answer = await self._replicate(msg, request_id)
            elif op == "follow":
                if self.rt.redirect is None:
                    raise BadRequestError("'follow' is only for proxies")
                host = arg(msg, "host", str)
                port = arg(msg, "port", int)
                self._admit(op, self._supervisor_epoch(msg))
                self.rt.redirect(host, port)  # no await since admitted: in turn
                answer = ok(request_id, **self._status())
            elif op == "snapshot":
                answer = self._snapshot(request_id)
            elif op == "forward":
                answer = await self._forward_write(msg, request_id)
            elif op == "reload":
                if self.rt.reload is None:
                    raise BadRequestError("'reload' is only for a server with a database")
                answer = ok(request_id, **await self.rt.reload(f"operator at {self.peer}"))
            elif op == "ack":
                if self.pair is not None:
                    self.pair.peer_ack()
                answer = ok(request_id, serial=self.rt.service.last_serial)
            else:
                answer = ok(request_id, **await self._role_command(op, msg))
        except RequestError as exc:
            answer = error(request_id, exc)
            if isinstance(exc, PermissionDeniedError):
                log_denied(self.rt.log, self.peer, op, exc)
            elif isinstance(exc, StaleSupervisorError):
                answer["supervisor_epoch"] = exc.newest
                self.rt.log.emit(
                    events.SUPERVISOR_COMMAND_REFUSED, command=op, peer=self.peer, reason=str(exc)
                )
        await self.link.send(answer)
        return True

    async def _role_command(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        """``switch-to-primary`` or ``switch-to-backup``: admitted by the supervisor
        fence and carried out under its lock, in turn; the answer's fields."""
        if self.pair is None:
            raise BadRequestError(f"'{op}' is not available on this server")
        force = arg(msg, "force", bool, False)
        over = arg(msg, "over", int, None) if op == "switch-to-primary" else None
        epoch = self._supervisor_epoch(msg)
        async with self._fenced.lock:
            self._admit(op, epoch)
            if op == "switch-to-primary":
                status = await self.pair.promote(force, over)
            else:
                status = await self.pair.demote(force)
        return {**status, "supervisor_epoch": self.fence.newest}

    async def _auth(self, msg: dict[str, Any], rid: int) -> bool:
        try:
            extra = self.handshake.answer(msg)
        except WrongProofError as exc:
            await self.rt.secret_tarpit.wrong_proof(self.peer)  # guessing is slowed
            return await self._refuse(rid, exc)
        except HandshakeError as exc:
            return await self._refuse(rid, exc)
        self.link.authenticate()  # for a listener with an addp auth_timeout, too
        self.rt.log.emit(events.MGMT_AUTH_OK, peer=self.peer)
        await self.link.send(ok(rid, **self._status(), **extra))
        return True

    async def _replicate(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        """Start streaming every change, in full, to a backup (or proxy)."""
        svc = self.rt.service
        if self.rt.role != "primary":
            raise BackupModeError("this server is not primary", self.rt.primary_hint)
        serial = arg(msg, "serial", int)
        sub = svc.subscribe()  # before reading history: nothing falls between
        sub.everything = True
        self._nursery.start_soon(self._forward_changes, sub)
        try:
            changes = await svc.history_since(serial)
            expired = False
        except HistoryExpiredError:
            changes, expired = [], True
        if self.pair is not None:
            self.pair.peer_ack()
        self.rt.log.emit(
            events.REPLICA_CONNECTED,
            name=self.peer,
            serial=serial,
            mode="history expired: reload" if expired else f"{len(changes)} changes to catch up",
        )
        extra: dict[str, Any] = {}
        if "options" in msg and self.rt.options is not None:  # a backup, not a proxy
            extra["options"] = self.rt.options
            check_options(self.rt, f"the backup at {self.peer}", msg["options"])
        return ok(
            rid,
            serial=svc.last_serial,
            epoch=svc.epoch,
            expired=expired,
            changes=[c.to_wire() for c in changes],
            **extra,
        )

    def _snapshot(self, rid: int) -> dict[str, Any]:
        """Every object in stored form, in chunks, then the serial they are at.

        No await between the first chunk and the answer: the objects are one
        consistent state at ``serial``.
        """
        svc = self.rt.service
        if self.rt.role != "primary":
            raise BackupModeError("this server is not primary", self.rt.primary_hint)
        # Chunks bounded in objects and in bytes (objects up to max-object-size each).
        chunks = chunker_for(rid, self.link.connection.peer_max_frame_size, READ_CHUNK)
        for obj in svc.all_objects():
            if (chunk := chunks.add(obj)) is not None:
                self.link.send_encoded_nowait(chunk)
        return ok(rid, objects=chunks.rest(), serial=svc.last_serial, epoch=svc.epoch)

    async def _forward_write(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        """A write a proxy relays for its client (already authenticated by the proxy),
        checked here again as the Person the proxy names in ``as_person`` (the proxy
        proved the management secret: it is trusted to name the Person)."""
        svc = self.rt.service
        if self.rt.role != "primary":
            raise BackupModeError("this server is not primary", self.rt.primary_hint)
        request = arg(msg, "request", dict)
        op = arg(request, "op", str)
        dbid = arg(request, "as_person", int, None)
        person = svc.get("Person", dbid) if dbid is not None else None
        if person is None or person.get("state") != "enabled":
            raise PermissionDeniedError(
                "a forwarded write must name the enabled Person who made it (as_person); "
                f"got {dbid!r}"
            )
        if op == "create":  # the default grant counts as given by the creator
            type_name = arg(request, "type", str)
            obj = with_default_access(
                type_name, arg(request, "object", dict), no_default_access(self.rt.options)
            )
            request = {**request, "object": obj}
        if op in ("create", "update", "delete"):
            authorize(svc, resolve(svc, person), op, request, self.rt.name)
        if op == "create":
            change = await svc.create(type_name, obj)
        elif op == "update":
            change = await svc.update(
                arg(request, "type", str),
                arg(request, "dbid", int),
                arg(request, "delta", dict, None),
                arg(request, "options", dict, None),
            )
        elif op == "delete":
            change = await svc.delete(arg(request, "type", str), arg(request, "dbid", int))
        else:
            raise BadRequestError(f"'{op}' cannot be forwarded (only create, update, delete)")
        return ok(rid, dbid=change.dbid, serial=change.serial, epoch=change.epoch)

    async def _forward_changes(self, sub: Subscription) -> None:
        try:
            async for change in sub.receive:
                self.link.send_nowait({"notify": change.to_wire()})
                while True:
                    try:
                        more = sub.receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    self.link.send_nowait({"notify": more.to_wire()})
                await self.link.flush()
            if sub.overflowed:
                await self.link.aclose("replica too slow: change stream overflowed; reconnect")
        except LinkEnded:
            return
        finally:
            self.rt.service.unsubscribe(sub)

    async def _push_roles(self) -> None:
        changed = self.rt.role_changed
        try:
            while True:
                await changed.wait()
                changed = self.rt.role_changed  # taken before sending: no change is missed
                await self.link.send({"push": "role", **self._status()})
        except LinkEnded:
            return
