"""The client port: one :class:`ClientSession` per connected client.

A session answers requests one at a time in arrival order, and forwards the
changes its subscription asks for from a bounded queue. A bad request gets
one error answer and the session goes on; only a broken link or a
subscriber too slow to keep up ends it.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from addp import LinkEnded, MessageTooLargeError, encode_payload
from addp.transport import Link
from confserv.core.access_checks import (
    Gate,
    PersonGoneError,
    authorize,
    change_readable,
    check_read_type,
    find_person,
    log_denied,
    no_default_access,
    readable,
    with_default_access,
)
from confserv.core.backlog import Backlog
from confserv.core.fanout import (
    SUBSCRIBER_BUFFER,
    SUBSCRIBER_BYTES,
    Outgoing,
    Subscription,
    public_change,
)
from confserv.core.runtime import Runtime
from confserv.logs import events
from confserv.logs.peer_text import peer_repr, peer_text
from confserv.model.access import Principal, rights_of
from confserv.model.objects import check_type
from confserv.store.base import Change
from confserv.wire.errors import (
    AuthError,
    BackupModeError,
    BadRequestError,
    DuplicateApplicationError,
    HistoryExpiredError,
    NotRegisteredError,
    PermissionDeniedError,
    RequestError,
    TicketRefusedError,
)
from confserv.wire.messages import CLIENT_OPS, READ_CHUNK, arg, error, ok, parse_request

from .read_chunks import chunker_for
from .resumption import resume_person, ticket_for

#: Operations whose answer must precede the notification of their own change.
_WRITE_OPS = frozenset({"create", "update", "delete"})
#: A read answer's chunk is sent once its objects encode to this many bytes.
#: Longest error text answered; an error may quote the request (an op name of 4 MiB).
MAX_ERROR_TEXT = 500


class ClientSession:
    """One client connection on the client port."""

    def __init__(self, link: Link, runtime: Runtime) -> None:
        self.link = link
        self.rt = runtime
        self.peer = link.name
        self.app: str | None = None
        self.daemon = False
        self.sub: Subscription | None = None
        self._forwarder_started = False
        #: Notifications queued since the link was last written out completely, and
        #: whether that is too many (the rule is :class:`~confserv.core.backlog.Backlog`'s).
        self._backlog = Backlog(SUBSCRIBER_BUFFER, SUBSCRIBER_BYTES)
        self._wake = trio.Event()
        self._too_large: MessageTooLargeError | None = None
        self._flushing = trio.CancelScope()
        #: While this session's write is answered: notifications held back until then.
        self._held: list[Change] | None = None
        #: The logged-in Person (set at registration) and, per request, as it is now.
        self.gate: Gate | None = None
        self._actor: Principal | None = None
        self._ended_why: str | None = None

    async def run(self) -> None:
        """Serve the connection until it ends."""
        self.rt.clients += 1
        reason = "closed"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    async for msg in self.link:
                        await self._handle(msg)
                except LinkEnded as exc:
                    reason = str(exc)
                nursery.cancel_scope.cancel()
        finally:
            reason = self._ended_why or reason
            self.rt.clients -= 1
            if self.gate is not None:
                self.rt.service.access.unwatch(self.gate.dbid, id(self))
            if self.sub is not None:
                self.rt.service.unsubscribe(self.sub)
            if self.app is not None:
                if self.daemon:
                    self.rt.daemons.discard(self.app)
                self.rt.log.emit(events.CLIENT_GONE, app=self.app, peer=self.peer, reason=reason)

    async def _handle(self, msg: Any) -> None:
        request_id = msg.get("id") if isinstance(msg, dict) else None
        try:
            op, request_id = parse_request(msg, CLIENT_OPS)
            if op != "register" and self.app is None:
                raise NotRegisteredError(f"register before '{op}'")
            if op not in ("register", "status") and not self.rt.serving:
                raise BackupModeError(
                    f"this server is in {self.rt.role} mode; it serves no clients",
                    self.rt.primary_hint,
                    primary_lost=self.rt.primary_lost,
                )
            if self.gate is not None and op not in ("register", "status"):
                self._actor = self.gate.actor()  # the Person's rights as they are now
            if op in _WRITE_OPS and self.sub is not None:
                self._held = []  # the answer goes out before the notification of its change
            started = time.perf_counter()
            answer = await getattr(self, "_op_" + op.replace("-", "_"))(msg, request_id)
            if op in _WRITE_OPS:
                self.rt.write_observed(time.perf_counter() - started)
        except PermissionDeniedError as exc:
            answer = error(request_id, exc)
            log_denied(self.rt.log, self.peer, msg.get("op") if isinstance(msg, dict) else "?", exc)
            if isinstance(exc, PersonGoneError):
                self._ended_why = str(exc)
                await self._send_answer(answer)
                await self.link.aclose(str(exc))
                return
        except RequestError as exc:
            answer = error(request_id, exc)
            answer["message"] = peer_text(answer["message"], MAX_ERROR_TEXT)
            self.rt.log.emit(
                events.REQUEST_REFUSED,
                op=peer_repr(msg.get("op")) if isinstance(msg, dict) else "?",
                peer=self.peer,
                code=exc.code,
                reason=answer["message"],
            )
            if isinstance(exc, BackupModeError) and self.app is not None and not self.rt.serving:
                # Registered while this server was primary: it no longer is. The
                # refusal is a definite answer (nothing was written); then the
                # link is closed so that the client reconnects to the primary.
                await self._send_answer(answer)
                await self.link.aclose(f"this server is now {self.rt.role}")
                return
        await self._send_answer(answer)

    async def _send_answer(self, answer: dict[str, Any]) -> None:
        """Send the answer, then what was held back while it was being made: on the
        connection that wrote a change, its answer comes before its notification
        (docs/protocol.md 10.5)."""
        held, self._held = self._held, None
        try:
            self.link.send_nowait(answer)
        except MessageTooLargeError as exc:  # e.g. an object stored before max-object-size
            refused = BadRequestError(f"the answer does not fit this client's frame limit: {exc}")
            self.link.send_nowait(error(answer.get("re"), refused))
        if held is None:
            await self.link.flush()
            return
        for change in held:
            # Prepared afresh: the Person's rights as they are now decide.
            out = self.rt.service.notifications.outgoing(change)
            if self.sub is not None and not self._deliver(out):
                self.rt.service.unsubscribe(self.sub)
        await self.link.flush()

    # -- operations -----------------------------------------------------------

    async def _op_register(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        if self.app is not None:
            raise BadRequestError(f"already registered as {self.app!r}")
        app = arg(msg, "app", str)
        app_type = arg(msg, "app_type", str, "client")
        user = arg(msg, "user", str)
        ticket = arg(msg, "ticket", str, None)
        password = arg(msg, "password", str, None if ticket is not None else ...)
        daemon = arg(msg, "daemon", bool, False)
        if not self.rt.serving:
            self.rt.log.emit(
                events.REGISTRATION_REFUSED, peer=self.peer, reason=f"{self.rt.role} mode"
            )
            raise BackupModeError(
                f"this server is in {self.rt.role} mode; connect to the primary",
                self.rt.primary_hint,
                primary_lost=self.rt.primary_lost,
            )
        if ticket is not None:  # a session resumed after a failover: one HMAC, no scrypt
            person = self._resumed(ticket, user)
        else:
            with self.link.authenticating():  # not evicted by a crowd while its hash runs
                known = await self.rt.service.authenticate(user, password, source=self.peer)
            if not known:
                self.rt.log.emit(
                    events.REGISTRATION_REFUSED,
                    peer=self.peer,
                    reason=f"bad password for {peer_repr(user)}",
                )
                raise AuthError(f"user {peer_repr(user)}: wrong user name or password")
            found = find_person(self.rt.service, user)
            if found is None:  # deleted while its login was checked
                raise AuthError(f"user {peer_repr(user)}: wrong user name or password")
            person = found
        gate = Gate(self.rt.service, self.rt.service.access, person)
        if daemon:
            if app in self.rt.daemons:
                self.rt.log.emit(
                    events.REGISTRATION_REFUSED,
                    peer=self.peer,
                    reason=f"{peer_repr(app)} already connected",
                )
                raise DuplicateApplicationError(
                    f"application {peer_repr(app)} is already connected"
                )
            self.rt.daemons.add(app)
        self.app, self.daemon, self.gate = app, daemon, gate
        self.rt.service.access.watch(gate.dbid, id(self), self._person_ended)
        self.link.authenticate()  # the port's deadline is met; full frames from now on
        registered = events.CLIENT_RESUMED if ticket is not None else events.CLIENT_REGISTERED
        self.rt.log.emit(registered, app=app, app_type=app_type, user=user, peer=self.peer)
        fresh = ticket_for(self.rt, person)
        return ok(rid, **self._server_info(), **({} if fresh is None else {"ticket": fresh}))

    def _resumed(self, ticket: str, user: str) -> dict[str, Any]:
        """The Person ``ticket`` resumes (it must be ``user``); refused: one line, and the
        client logs in with its password."""
        try:
            person = resume_person(self.rt, ticket)
            if user not in (person.get("name"), person.get("user_name")):
                raise TicketRefusedError("resumption ticket refused: issued to another user")
        except TicketRefusedError as exc:
            self.rt.log.emit(events.REGISTRATION_REFUSED, peer=self.peer, reason=str(exc))
            raise
        self.rt.resumed += 1
        return person

    def _server_info(self) -> dict[str, Any]:
        svc = self.rt.service
        return {
            "server": self.rt.name,
            "role": self.rt.role,
            "epoch": svc.epoch,
            "serial": svc.last_serial,
        }

    async def _op_status(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        return ok(rid, **self.rt.status())

    def _person_ended(self, why: str) -> None:
        """Told by the service's AccessWatch: this session's Person was disabled or deleted."""
        name = self.gate.name if self.gate is not None else "?"
        self._ended_why = f"person {name!r} was {why}"
        self._nursery.start_soon(self.link.aclose, self._ended_why)

    def _who(self) -> Principal:
        """The Person making this request (resolved by :meth:`_handle`)."""
        assert self._actor is not None, "registered sessions have a Person"
        return self._actor

    async def _op_read(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        type_name = check_type(arg(msg, "type", str))
        flt = arg(msg, "filter", dict, None)
        who = self._who()
        check_read_type(who, type_name)
        serial = self.rt.service.last_serial
        # Chunks bounded in objects and in bytes (objects up to max-object-size).
        chunks = chunker_for(rid, self.link.connection.peer_max_frame_size, READ_CHUNK)
        whole_type = rights_of(who, type_name).has("r")  # else object by object (folders)
        for obj in self.rt.service.read(type_name, flt):
            if not whole_type and not readable(who, obj):
                continue
            if (chunk := chunks.add(obj)) is not None:
                try:
                    self.link.send_encoded_nowait(chunk)
                except MessageTooLargeError as exc:  # one object stored before the limit
                    raise BadRequestError(f"{type_name} {obj.get('dbid')}: {exc}") from None
        rest = chunks.rest()
        return ok(rid, objects=rest, count=chunks.sent + len(rest), serial=serial)

    async def _forwarded(self, msg: dict[str, Any], rid: int) -> dict[str, Any] | None:
        """Check the write as this session's Person; in proxy mode, relay it to the
        primary and return its answer (the proxy does not know the primary's
        no-default-access: a new Person's default grant is checked there)."""
        authorize(self.rt.service, self._who(), str(msg.get("op")), msg, self.rt.name)
        if self.rt.forward is None:
            return None
        # The primary checks the write again as this Person (the proxy names it).
        request = {k: v for k, v in msg.items() if k not in ("id", "as_person")}
        request["as_person"] = self._who().dbid
        answer = await self.rt.forward(request)
        return ok(rid, **{k: answer[k] for k in ("dbid", "serial", "epoch")})

    async def _op_create(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        type_name = arg(msg, "type", str)
        obj = arg(msg, "object", dict)
        if self.rt.forward is None:  # the default grant counts as given by the creator
            obj = with_default_access(type_name, obj, no_default_access(self.rt.options))
        if (relayed := await self._forwarded({**msg, "object": obj}, rid)) is not None:
            return relayed
        change = await self.rt.service.create(type_name, obj)
        self._log_change(change)
        return ok(rid, dbid=change.dbid, serial=change.serial, epoch=change.epoch)

    async def _op_update(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        if (relayed := await self._forwarded(msg, rid)) is not None:
            return relayed
        change = await self.rt.service.update(
            arg(msg, "type", str),
            arg(msg, "dbid", int),
            arg(msg, "delta", dict, None),
            arg(msg, "options", dict, None),
        )
        self._log_change(change)
        return ok(rid, dbid=change.dbid, serial=change.serial, epoch=change.epoch)

    async def _op_delete(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        if (relayed := await self._forwarded(msg, rid)) is not None:
            return relayed
        change = await self.rt.service.delete(arg(msg, "type", str), arg(msg, "dbid", int))
        self._log_change(change)
        return ok(rid, dbid=change.dbid, serial=change.serial, epoch=change.epoch)

    def _log_change(self, change: Any) -> None:
        name = change.data.get("name") or (self.rt.service.get(change.type, change.dbid) or {}).get(
            "name", "?"
        )
        self.rt.log.emit(
            events.OBJECT_CHANGED,
            serial=change.serial,
            epoch=change.epoch,
            op=change.op,
            type=change.type,
            dbid=change.dbid,
            name=name,
            by=self.app,
        )

    async def _op_subscribe(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        type_name = arg(msg, "type", (str, type(None)), None)
        dbid = arg(msg, "dbid", int, None)
        if self.sub is None:
            self.sub = self.rt.service.subscribe()
            self.sub.deliver = self._deliver
        if type_name is None:
            if dbid is not None:
                raise BadRequestError("'dbid' needs 'type'")
            self.sub.everything = True
        else:
            check_type(type_name)
            check_read_type(self._who(), type_name)
            if dbid is None:
                self.sub.types.add(type_name)
            else:
                self.sub.objects.add((type_name, dbid))
        if not self._forwarder_started:
            self._forwarder_started = True
            self._nursery.start_soon(self._forward, self.sub)
        return ok(rid, serial=self.rt.service.last_serial, epoch=self.rt.service.epoch)

    async def _op_unsubscribe(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        if self.sub is not None:
            self.sub.types.clear()
            self.sub.objects.clear()
            self.sub.everything = False
        return ok(rid)

    async def _op_restore(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        serial = arg(msg, "serial", int)
        who, svc = self._who(), self.rt.service
        try:
            changes = await self.rt.service.history_since(serial)
        except RequestError:
            self.rt.log.emit(events.HISTORY_EXPIRED, serial=serial, peer=self.peer)
            raise
        answer = ok(
            rid,
            changes=[public_change(c) for c in changes if change_readable(who, svc, c)],
            serial=self.rt.service.last_serial,
            epoch=self.rt.service.epoch,
        )
        if len(encode_payload(answer)) > self.link.connection.peer_max_frame_size:
            # One answer cannot carry them: the client reloads instead (as for an
            # expired history), rather than the answer failing to go out.
            self.rt.log.emit(events.HISTORY_EXPIRED, serial=serial, peer=self.peer)
            raise HistoryExpiredError(
                f"the {len(changes)} changes since serial {serial} are larger than one "
                "answer may be: reload"
            )
        return answer

    def _deliver(self, out: Outgoing) -> bool:
        """Called by the publisher: queue the notification, and write it out if the socket can.

        One encoding per change is shared by every subscriber, and one decision
        per Person whether it may see the change; a socket with room takes it at
        once, with no task switch (a thousand subscribers cost a thousand writes,
        not a thousand wake-ups). What a socket does not take waits, in order,
        for this session's forwarder. False drops the subscription: the link is
        over, or it is too far behind.
        """
        if self._held is not None:
            self._held.append(out.change)  # this session's own write is being answered
            return True
        gate = self.gate
        if gate is None:
            return True
        visible = out.verdicts.get(gate.dbid)
        if visible is None:
            visible = out.verdicts[gate.dbid] = self._may_see(gate, out.change)
        if not visible:
            return True  # not for this Person's eyes, or the session is being closed
        now = out.now
        if now is None:
            now = out.now = trio.current_time()
        data = out.data
        try:
            if self.link.send_frame_nowait(data, out.frame, now):
                if self._backlog.behind:  # checked here: a call per subscriber costs
                    self._backlog.written()
                return True
        except LinkEnded:
            return False  # the request loop sees the same end and reports it
        except MessageTooLargeError as exc:
            self._too_large = exc
            self._wake.set()
            return False
        if not self._backlog.queued(len(data)):
            assert self.sub is not None
            self.sub.overflowed = True
            self._flushing.cancel()  # a flush into a full socket would wait forever
        self._wake.set()
        return not (self.sub is not None and self.sub.overflowed)

    def _may_see(self, gate: Gate, change: Change) -> bool:
        """Whether the Person of ``gate`` may see ``change`` now (False once that
        Person is gone: the session is being closed)."""
        try:
            return change_readable(gate.actor(), self.rt.service, change)
        except PersonGoneError:
            return False

    async def _forward(self, sub: Subscription) -> None:
        """Write out what :meth:`_deliver` could not; end the link of a subscriber left behind."""
        try:
            while not sub.overflowed and self._too_large is None:
                await self._wake.wait()
                self._wake = trio.Event()
                queued = self._backlog.behind  # a flush writes everything queued when it starts
                with self._flushing:
                    await self.link.flush()
                if self._flushing.cancelled_caught:
                    break
                self._flushing = trio.CancelScope()
                # Only what is still unwritten counts: a client that keeps up with a
                # full socket buffer is not "behind".
                self._backlog.flushed(queued, self.link.unsent)
        except LinkEnded:
            return  # the request loop sees the same end and reports it
        if self._too_large is not None:
            too_large = f"a notification is larger than this client accepts: {self._too_large}"
            await self.link.aclose(too_large)
            return
        self.rt.log.emit(
            events.SUBSCRIBER_TOO_SLOW, app=self.app, peer=self.peer, count=SUBSCRIBER_BUFFER
        )
        reason = "too slow: notifications overflowed; restore from your serial"
        if self._flushing.cancelled_caught:
            await self.link.abort(reason)  # a frame was cut short: no CLOSE can follow it
        else:
            await self.link.aclose(reason)
