"""The supervisor's control port: ``scs status|switchover|pause|resume`` talk to it.

The same challenge-response as a Configuration Server's management port
(:func:`confserv.server.management.challenge_response` with ``[scs] control-secret``),
so :func:`confserv.client.session.open_management` is its client. Commands before
authenticating are refused and logged as an alarm.
"""

from __future__ import annotations

import hmac
import os
from functools import partial
from typing import Any

import trio

from addp import AddpOptions, LinkEnded
from addp.transport import Link, serve
from confserv.wire.auth import challenge_response
from confserv.wire.errors import AuthError, BadRequestError, RequestError
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
#: How long ``switchover`` waits for the outcome before answering.
SWITCHOVER_WAIT = 30.0


class ControlSession:
    """One connection on the control port."""

    def __init__(self, link: Link, sup: Supervisor, secret: str) -> None:
        self.link, self.sup, self.secret = link, sup, secret
        self.nonce = os.urandom(16).hex()
        self.authenticated = False

    async def run(self) -> None:
        """Serve until the link ends or authentication fails."""
        await self.link.send({"challenge": self.nonce, "server": "scs"})
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
                    return
        except LinkEnded:
            return

    async def _handle(self, msg: Any) -> dict[str, Any]:
        op, rid = parse_request(msg, CONTROL_OPS)
        peer = self.link.name
        if op == "auth":
            response = arg(msg, "response", str)
            if hmac.compare_digest(
                response.encode(), challenge_response(self.secret, self.nonce).encode()
            ):
                self.authenticated = True
                return ok(rid, servers=self._status())
            self.sup.log.emit(events.CONTROL_AUTH_FAILED, peer=peer, reason="wrong response")
            raise AuthError("authentication failed: wrong response to the challenge")
        if not self.authenticated:
            self.sup.log.emit(events.CONTROL_AUTH_FAILED, peer=peer, reason=f"'{op}' first")
            raise AuthError(f"authenticate before '{op}'")
        if op != "status":  # status is polled: not worth a line each time
            self.sup.log.emit(events.CONTROL_COMMAND, command=op, peer=peer)
        core = self.sup.core
        who = f"operator at {peer}"
        if op == "status":
            return ok(rid, servers=self._status())
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
        return self.sup.core.snapshot(trio.current_time())


async def serve_control(
    sup: Supervisor, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on ``[scs] control-port`` (127.0.0.1) until cancelled."""
    settings = sup.settings
    assert settings.control_port is not None
    assert settings.control_secret is not None
    secret = settings.control_secret

    async def handler(link: Link) -> None:
        await ControlSession(link, sup, secret).run()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(serve, handler, settings.control_port, AddpOptions())
        )
        bound: int = listeners[0].socket.getsockname()[1]
        sup.log.emit(events.CONTROL_LISTENING, host="127.0.0.1", port=bound)
        task_status.started(bound)
