"""The agent's port: supervisors authenticate, command processes and hear of every exit (trio).

One :class:`Agent` per host. Each connection first proves ``agent-secret``
(the mutual challenge-response of :mod:`addp.auth`, purpose ``agent``, the
agent's identity being its host name), then sends requests
(:mod:`lca.protocol`) and receives one answer each, ``{"re": id, "ok": ...}``,
and the pushes ``{"push": "exit", "name": ..., "pid": ..., "how": ...}`` of
every exit the agent owes (:class:`lca.core.AgentCore`) until one connection
acknowledges it (``ack``). The newest supervisor epoch seen is kept in the
state directory, so a restarted agent refuses an old supervisor too.
"""

from __future__ import annotations

import logging
import signal
import ssl
from pathlib import Path
from typing import Any

import trio

from addp import AddpOptions, LinkEnded
from addp.auth import HandshakeError, Purpose, ServerHandshake
from addp.transport import Link, serve

from .core import AgentCore, Exit
from .processes import AlreadyRunningError, NotWatchedError, ProcessError, Processes, StartError
from .protocol import Ack, AgentRequestError, List, Request, Signal, Start, Stop, parse_request
from .records import write_atomically

#: The Genesys default port of a Local Control Agent.
DEFAULT_PORT = 4999
#: Seconds a connection has to authenticate.
AUTH_TIMEOUT = 5.0
#: Connections at once, and of them not authenticated yet.
MAX_CONNECTIONS, MAX_UNAUTHENTICATED = 64, 16

_log = logging.getLogger("lca")


def _error(rid: Any, code: str, message: str) -> dict[str, Any]:
    return {"re": rid, "ok": False, "code": code, "message": message}


def _code(exc: ProcessError) -> str:
    if isinstance(exc, AlreadyRunningError):
        return "already-running"
    if isinstance(exc, StartError):
        return "start-failed"
    return "not-watched" if isinstance(exc, NotWatchedError) else "error"


class Agent:
    """The agent of one host: its processes, its decisions, its connected supervisors."""

    def __init__(self, state_dir: Path, secret: str | None, identity: str) -> None:
        self.state_dir = state_dir
        self.processes = Processes(state_dir)
        self.secret, self.identity = secret, identity
        self.core = AgentCore(epoch=self._load_epoch())
        self._links: set[Link] = set()
        self._nursery: trio.Nursery | None = None

    def _epoch_path(self) -> Path:
        return self.state_dir / "supervisor-epoch"

    def _load_epoch(self) -> int:
        try:
            return int(self._epoch_path().read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def run(
        self,
        port: int = DEFAULT_PORT,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Find again what runs (and the exits missed), then serve ``host:port`` (over
        TLS with ``ssl_context``) until cancelled; ``task_status`` gets the port."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            running, ended, problems = self.processes.recover()
            for line in problems:
                _log.warning("state: %s", line)
            for name, pid in running.items():
                nursery.start_soon(self._watch, name, pid)
            for name, (pid, how) in ended.items():
                self.core.exited(name, pid, how)
            listeners = await nursery.start(
                lambda task_status: serve(
                    self._session,
                    port,
                    AddpOptions(),
                    host=host,
                    task_status=task_status,
                    auth_timeout=AUTH_TIMEOUT,
                    max_connections=MAX_CONNECTIONS,
                    max_unauthenticated=MAX_UNAUTHENTICATED,
                    ssl_context=ssl_context,
                )
            )
            task_status.started(int(listeners[0].socket.getsockname()[1]))

    async def _watch(self, name: str, pid: int) -> None:
        how = await self.processes.wait(name, pid)
        _log.info("%s (pid %d) ended: %s", name, pid, how)
        gone = self.core.exited(name, pid, how)
        for link in list(self._links):
            await self._push(link, gone)

    async def _push(self, link: Link, gone: Exit) -> None:
        try:
            await link.send({"push": "exit", "name": gone.name, "pid": gone.pid, "how": gone.how})
        except LinkEnded:
            self._links.discard(link)

    async def _session(self, link: Link) -> None:
        handshake = ServerHandshake(
            Purpose.AGENT, self.secret, self.identity, now=trio.current_time(), timeout=AUTH_TIMEOUT
        )
        await link.send(handshake.challenge())
        first: Any = None
        with trio.move_on_at(handshake.deadline or trio.current_time()):
            first = await link.receive()
        try:
            if first is None:
                handshake.expire(trio.current_time())
            if not isinstance(first, dict) or first.get("op") != "auth":
                raise HandshakeError("authenticate first: the first request must be 'auth'")
            extra = handshake.answer(first)
        except HandshakeError as exc:
            _log.warning("agent client %s failed to authenticate: %s", link.name, exc)
            rid = first.get("id") if isinstance(first, dict) else None
            await link.send(_error(rid, exc.code, str(exc)))
            await link.aclose(f"authentication failed: {exc}")
            return
        link.authenticate()
        await link.send({"re": first.get("id"), "ok": True, **extra, **self._listing()})
        self._links.add(link)
        try:
            for gone in self.core.connected():
                await self._push(link, gone)
            async for msg in link:
                await link.send(await self._answer(msg, link.name))
        finally:
            self._links.discard(link)

    async def _answer(self, msg: Any, peer: str) -> dict[str, Any]:
        rid = msg.get("id") if isinstance(msg, dict) else None
        try:
            request = parse_request(msg)
            if self.core.admit(request):
                write_atomically(self._epoch_path(), f"{self.core.epoch}\n")
            if isinstance(request.command, (Start, Stop, Signal)):
                # who acted at which epoch: a checker's and an operator's record
                _log.info(
                    "%s of %s from %s admitted at supervisor epoch %d",
                    type(request.command).__name__.lower(),
                    request.command.name,
                    peer,
                    request.epoch,
                )
            return {"re": request.id, "ok": True, **await self._carry_out(request)}
        except AgentRequestError as exc:
            refused = _error(rid, exc.code, str(exc))
            if exc.code == "stale-supervisor":
                refused["supervisor_epoch"] = self.core.epoch  # the newest seen here
            return refused
        except ProcessError as exc:
            answer = _error(rid, _code(exc), str(exc))
            if isinstance(exc, AlreadyRunningError):
                answer["pid"] = exc.pid
            return answer

    async def _carry_out(self, request: Request) -> dict[str, Any]:
        command = request.command
        if isinstance(command, Start):
            env = None if command.env is None else dict(command.env)
            pid = await self.processes.start(
                command.name, list(command.argv), Path(command.cwd), Path(command.log), env
            )
            assert self._nursery is not None
            self._nursery.start_soon(self._watch, command.name, pid)
            _log.info("started %s: pid %d", command.name, pid)
            return {"pid": pid}
        if isinstance(command, Stop):
            await self.processes.terminate(command.name, command.pid, command.timeout)
            return {}
        if isinstance(command, Signal):
            self.processes.signal(command.name, command.pid, signal.Signals[command.signal])
            return {}
        if isinstance(command, Ack):
            if self.core.acknowledged(command.name, command.pid):
                self.processes.delivered(command.name, command.pid)
            return {}
        assert isinstance(command, List)
        return self._listing()

    def _listing(self) -> dict[str, Any]:
        owed = [{"name": e.name, "pid": e.pid, "how": e.how} for e in self.core.owed]
        return {"running": self.processes.running(), "exits": owed, "epoch": self.core.epoch}
