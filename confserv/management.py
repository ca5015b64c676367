"""The management port: challenge-response authentication, status, role commands.

On connect the server sends ``{"challenge": <hex nonce>}``. The client answers
``{"op": "auth", "id": n, "response": HMAC-SHA256(secret, "cfgha-mgmt-v1:" + nonce)}``
so the secret never crosses the wire. Until then every command is refused;
a wrong response is logged as an alarm and closes the connection.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from addp import Link, LinkEnded

from . import events
from .errors import AuthError, BadRequestError, RequestError
from .protocol import MANAGEMENT_OPS, arg, error, ok, parse_request
from .runtime import Runtime

#: Prefix of the signed challenge, naming the scheme and its version.
CHALLENGE_CONTEXT = b"cfgha-mgmt-v1:"

#: A role command: ``(force) -> answer fields``; installed by the role manager.
RoleCommand = Callable[[bool], Awaitable[dict[str, Any]]]


def challenge_response(secret: str, nonce: str) -> str:
    """The answer to a management challenge (used by clients and the server)."""
    return hmac.new(secret.encode(), CHALLENGE_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


class ManagementSession:
    """One connection on the management port."""

    def __init__(
        self,
        link: Link,
        runtime: Runtime,
        secret: str | None,
        commands: dict[str, RoleCommand] | None = None,
    ) -> None:
        self.link = link
        self.rt = runtime
        self.secret = secret
        self.commands = commands or {}
        self.peer = link.name
        self.nonce = os.urandom(16).hex()
        self.authenticated = False

    async def run(self) -> None:
        """Serve the connection until it ends or authentication fails."""
        await self.link.send({"challenge": self.nonce, "server": self.rt.name})
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async for msg in self.link:
                    if not await self._handle(msg):
                        break
            except LinkEnded:
                pass
            nursery.cancel_scope.cancel()

    async def _handle(self, msg: Any) -> bool:
        request_id = msg.get("id") if isinstance(msg, dict) else None
        try:
            op, request_id = parse_request(msg, MANAGEMENT_OPS)
            if op == "auth":
                return await self._auth(msg, request_id)
            if not self.authenticated:
                self.rt.log.emit(
                    events.MGMT_AUTH_FAILED, peer=self.peer, reason=f"'{op}' before authenticating"
                )
                raise AuthError(f"authenticate before '{op}'")
            self.rt.log.emit(events.MGMT_COMMAND, command=op, peer=self.peer)
            if op == "status":
                answer = ok(request_id, **self.rt.status())
            elif op == "watch":
                self._nursery.start_soon(self._push_roles)
                answer = ok(request_id, **self.rt.status())
            else:
                command = self.commands.get(op)
                if command is None:
                    raise BadRequestError(f"'{op}' is not available on this server")
                force = arg(msg, "force", bool, False)
                answer = ok(request_id, **await command(force))
        except RequestError as exc:
            answer = error(request_id, exc)
        await self.link.send(answer)
        return True

    async def _auth(self, msg: dict[str, Any], rid: int) -> bool:
        response = arg(msg, "response", str)
        if self.secret is None:
            reason = "no management-secret is configured for this server"
        elif hmac.compare_digest(response, challenge_response(self.secret, self.nonce)):
            self.authenticated = True
            self.rt.log.emit(events.MGMT_AUTH_OK, peer=self.peer)
            await self.link.send(ok(rid, **self.rt.status()))
            return True
        else:
            reason = "wrong response to the challenge"
        self.rt.log.emit(events.MGMT_AUTH_FAILED, peer=self.peer, reason=reason)
        await self.link.send(error(rid, AuthError(f"authentication failed: {reason}")))
        await self.link.aclose("authentication failed")
        return False

    async def _push_roles(self) -> None:
        try:
            while True:
                await self.rt.role_changed.wait()
                await self.link.send({"push": "role", **self.rt.status()})
        except LinkEnded:
            return
