"""The supervisor's control port: ``scs status|switchover|pause|resume`` talk to it.

Mutual authentication as on a Configuration Server's management port, with
its own scheme (``cfgha-ctl-v2``, :class:`confserv.wire.auth.Purpose`) and
secret (``[scs] control-secret``) and the identity ``scs``;
:func:`confserv.client.session.open_control` is its client. Anything but a
successful ``auth`` first, or no ``auth`` within ``[scs] auth-timeout``
seconds: one refusal, one alarm line, and the connection is closed. With
``[scs] encryption = true`` the port speaks TLS (``[scs] tls-*``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from addp import AddpOptions, LinkEnded
from addp.transport import Link, serve
from confserv.core.secret_tarpit import SecretTarpit
from confserv.server.auth_deadline import close_at_auth_deadline
from confserv.wire.auth import (
    CONTROL_IDENTITY,
    DEFAULT_AUTH_TIMEOUT,
    HandshakeError,
    Purpose,
    ServerHandshake,
    WrongProofError,
)
from confserv.wire.errors import BadRequestError, RequestError
from confserv.wire.messages import arg, error, ok, parse_request

from . import events
from .observations import (
    OperatorPause,
    OperatorResume,
    OperatorStart,
    OperatorStop,
    OperatorSwitchover,
)
from .supervisor import Supervisor

CONTROL_OPS = ("auth", "status", "switchover", "pause", "resume", "stop", "start")
#: Connections the control port serves at once; the excess gets a CLOSE naming
#: the cap (idle connections exhausted the supervisor's file descriptors).
CONTROL_MAX_CONNECTIONS = 256
#: Of them, not authenticated yet: at the cap the oldest is closed for a newcomer,
#: so that an operator who authenticates at once gets in through a crowd.
CONTROL_MAX_UNAUTHENTICATED = 64
#: How long ``switchover`` waits for the outcome before answering.
SWITCHOVER_WAIT = 30.0


class ControlSession:
    """One connection on the control port."""

    def __init__(
        self,
        link: Link,
        sup: Supervisor,
        secret: str,
        *,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        tarpit: SecretTarpit | None = None,
    ) -> None:
        self.link, self.sup, self.secret = link, sup, secret
        self.tarpit = tarpit  # the port's: slows the answers to wrong secrets, per source
        self.handshake = ServerHandshake(
            Purpose.CONTROL,
            secret,
            CONTROL_IDENTITY,
            now=trio.current_time(),
            timeout=auth_timeout,
        )

    @property
    def authenticated(self) -> bool:
        """Whether the client has authenticated."""
        return self.handshake.authenticated

    async def run(self) -> None:
        """Serve until the link ends, authentication fails or its deadline passes."""
        await self.link.send(self.handshake.challenge())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                close_at_auth_deadline,
                self.handshake,
                self.link,
                lambda why: self.sup.log.emit(
                    events.CONTROL_AUTH_FAILED, peer=self.link.name, reason=why
                ),
                nursery.cancel_scope,
            )
            try:
                async for msg in self.link:
                    rid = msg.get("id") if isinstance(msg, dict) else None
                    try:
                        answer = await self._handle(msg)
                    except RequestError as exc:
                        answer = error(rid, exc)
                    await self.link.send(answer)
                    if not self.authenticated:
                        await self.link.aclose("authentication failed")
                        break
            except LinkEnded:
                pass
            nursery.cancel_scope.cancel()

    async def _handle(self, msg: Any) -> dict[str, Any]:
        peer = self.link.name
        try:
            op, rid = parse_request(msg, CONTROL_OPS)
        except RequestError:
            if self.authenticated:
                raise
            raise HandshakeError("authenticate first: the first request must be 'auth'") from None
        try:
            if op == "auth":
                proof = self.handshake.answer(msg)
                self.link.authenticate()
                return ok(rid, servers=self._status(), supervisor=self.sup.describe(), **proof)
            self.handshake.command(op)
        except HandshakeError as exc:
            self.sup.log.emit(events.CONTROL_AUTH_FAILED, peer=peer, reason=str(exc))
            if isinstance(exc, WrongProofError) and self.tarpit is not None:
                await self.tarpit.wrong_proof(peer)
            raise
        if op != "status":  # status is polled: not worth a line each time
            self.sup.log.emit(events.CONTROL_COMMAND, command=op, peer=peer)
        who = f"operator at {peer}"
        if op == "status":
            return ok(rid, servers=self._status(), supervisor=self.sup.describe())
        if not self.sup.acting:
            raise NotActiveError(_not_active(self.sup.describe()))
        core = self.sup.core
        if op in ("stop", "start"):
            server = arg(msg, "server", str)
            if server not in self.sup.settings.servers:
                raise BadRequestError(f"no server [{server}]")
            self.sup.feed(OperatorStop(server, who) if op == "stop" else OperatorStart(server, who))
            return ok(rid, servers=self._status())
        name = arg(msg, "pair", str)
        try:
            pair = self.sup.settings.find_pair(name).name
        except Exception as exc:
            raise BadRequestError(str(exc)) from None
        if op == "pause":
            self.sup.feed(OperatorPause(pair, who))
        elif op == "resume":
            self.sup.feed(OperatorResume(pair, who))
        else:
            self.sup.feed(OperatorSwitchover(pair, who))
            with trio.move_on_after(SWITCHOVER_WAIT):
                while core.switchover_under_way(pair):
                    await self.sup.changed.wait()
            result = core.switchover_result(pair) or "still under way"
            if result.startswith("failed"):
                raise BadRequestError(f"switchover of {pair!r} {result}")
            return ok(rid, result=result, servers=self._status())
        return ok(rid, servers=self._status())

    def _status(self) -> list[dict[str, Any]]:
        return self.sup.snapshot(trio.current_time())


class NotActiveError(RequestError):
    """An operator's command sent to a standby supervisor: only the active one acts."""

    code = "standby-supervisor"


def _not_active(described: dict[str, Any]) -> str:
    active = described.get("active")
    where = "no supervisor holds the supervisor lease now"
    if active:
        where = (
            f"the active one is '{active['name']}' ({active['process']}) at epoch {active['epoch']}"
        )
    return f"this supervisor ('{described.get('name')}') is standby: {where}; ask that one"


async def serve_control(
    sup: Supervisor, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on ``[scs] control-port`` (127.0.0.1) until cancelled."""
    settings = sup.settings
    assert settings.control_port is not None
    assert settings.control_secret is not None
    secret = settings.control_secret
    timeout = settings.auth_timeout
    tls = settings.tls

    tarpit = SecretTarpit("control secret", sup.log.emit)

    async def handler(link: Link) -> None:
        await ControlSession(link, sup, secret, auth_timeout=timeout, tarpit=tarpit).run()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(
                serve,
                handler,
                settings.control_port,
                AddpOptions(),
                max_connections=CONTROL_MAX_CONNECTIONS,
                max_unauthenticated=CONTROL_MAX_UNAUTHENTICATED,
                # A backstop behind the session's own deadline; until then addp
                # takes only small frames (a 4 MiB frame before auth is refused).
                auth_timeout=timeout + 1.0,
                ssl_context=tls.server,  # [scs] encryption = true (None: plain TCP)
            )
        )
        bound: int = listeners[0].socket.getsockname()[1]
        sup.log.emit(events.CONTROL_LISTENING, host="127.0.0.1", port=bound)
        task_status.started(bound)
