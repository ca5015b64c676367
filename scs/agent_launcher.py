"""The :class:`~scs.launcher.Launcher` seam served by a host's agent (``lca``) over its port.

What makes an exit from here **proof of death**: :meth:`AgentLauncher.wait`
returns only when the agent reports that very process's end (its shim saw
it, on that host). A lost link to the agent is *not* an end: ``wait`` goes on
waiting while the launcher reconnects, and on reconnecting the agent tells
every exit it still owes, so an end that happened meanwhile is learnt then.
Each exit is acknowledged once it has been handed out. Every command carries
the supervisor epoch (``epoch``), so an agent that has seen a newer
supervisor refuses it (issue 14).

The supervisor uses one per host section of ``scs.conf`` that names an
agent (:mod:`scs.hosts`); ``on_link`` tells it when the agent link comes
and goes, for its log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from addp import AddpOptions, LinkEnded
from confserv.client.session import ManagementClient, open_management
from confserv.wire.auth import Purpose
from confserv.wire.errors import ConfServError, RequestError, StaleSupervisorError
from confserv.wire.tls import ClientTls

from .launcher import AdoptError, AlreadyRunningError, LaunchError, NotActingError, NotWatchedError

#: Seconds between two attempts to reach the agent.
RECONNECT = 0.5

_Key = tuple[str, int]


class AgentLauncher:
    """Starts, watches, kills and stops the processes of one host through its agent."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        identity: str,
        *,
        epoch: Callable[[], int] = lambda: 0,
        timeout: float = 10.0,
        tls: ClientTls | None = None,
        on_link: Callable[[dict[str, int] | None, str], None] | None = None,
        addp: AddpOptions | None = None,
        on_superseded: Callable[[int], None] | None = None,
    ) -> None:
        self.host, self.port, self.secret, self.identity = host, port, secret, identity
        self.epoch, self.timeout, self.tls = epoch, timeout, tls
        #: Called with what runs when the link comes up, and with None and why when it ends.
        self.on_link = on_link
        #: Called with the newest epoch (-1: not told) when the agent refuses a command
        #: as coming from an older supervisor epoch than one it has seen.
        self.on_superseded = on_superseded
        #: The link's keep-alive: a host that dies or is cut off is noticed by it.
        self.addp = addp if addp is not None else AddpOptions(True, 1.0, 1.0)
        self._client: ManagementClient | None = None
        self._up = trio.Event()
        self._running: dict[str, int] = {}
        self._exits: dict[_Key, str] = {}
        self._ended: dict[_Key, trio.Event] = {}
        self._handed_out: set[_Key] = set()
        self._flush_wanted = trio.Event()  # kill() queued a message the socket did not take

    @property
    def up(self) -> bool:
        """Whether the link to the agent is up now."""
        return self._up.is_set()

    @property
    def where(self) -> str:
        """The agent, for messages."""
        return f"the agent of {self.identity} at {self.host}:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the link to the agent up, until cancelled (started at once)."""
        task_status.started()
        while True:
            try:
                async with open_management(
                    self.host,
                    self.port,
                    self.secret,
                    expect=self.identity,
                    purpose=Purpose.AGENT,
                    addp=self.addp,
                    timeout=self.timeout,
                    tls=self.tls,
                ) as client:
                    self._client = client
                    await self._resync(client.initial_status)
                    self._up.set()
                    if self.on_link is not None:
                        self.on_link(dict(self._running), "")
                    why = "the link ended"
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._flusher, client)
                        try:
                            while True:
                                push = await client.session.next_notification()
                                if push.get("push") == "exit":
                                    name, pid = str(push["name"]), int(push["pid"])
                                    await self._exited(name, pid, str(push["how"]))
                        except (LinkEnded, ConfServError) as exc:
                            why = str(exc) or why
                        nursery.cancel_scope.cancel()
            except (OSError, LinkEnded, ConfServError, trio.TooSlowError):
                why = ""
            finally:
                self._client = None
                if self._up.is_set():
                    self._up = trio.Event()
                    if self.on_link is not None:
                        self.on_link(None, why or "the link ended")
            await trio.sleep(RECONNECT)

    async def _flusher(self, client: ManagementClient) -> None:
        """Write what :meth:`kill` queued when the socket had no room at once."""
        with contextlib.suppress(LinkEnded):  # the link's end is seen by run() too
            while True:
                await self._flush_wanted.wait()
                self._flush_wanted = trio.Event()
                await client.session.link.flush()

    async def _resync(self, hello: dict[str, Any]) -> None:
        """What the agent said on connecting: what runs, and the exits it owes."""
        self._running = {str(n): int(p) for n, p in dict(hello.get("running", {})).items()}
        for gone in hello.get("exits", []):
            await self._exited(str(gone["name"]), int(gone["pid"]), str(gone["how"]))

    async def _exited(self, name: str, pid: int, how: str) -> None:
        key = (name, pid)
        self._exits[key] = how
        if self._running.get(name) == pid:
            del self._running[name]
        self._ended.setdefault(key, trio.Event()).set()
        if key in self._handed_out:
            await self._ack(name, pid)  # told again after a reconnect: the agent may forget it

    async def _ack(self, name: str, pid: int) -> None:
        client = self._client
        if client is not None:  # else: told again on the next link, and acknowledged then
            # (a standby acknowledges nothing: the exit stays owed to the active one)
            with contextlib.suppress(LinkEnded, ConfServError, NotActingError):
                await self._send(client, "ack", name=name, pid=pid)

    async def _request(self, op: str, **args: Any) -> dict[str, Any]:
        with trio.fail_after(self.timeout):
            await self._up.wait()
        assert self._client is not None
        return await self._send(self._client, op, **args)

    async def _send(self, client: ManagementClient, op: str, **args: Any) -> dict[str, Any]:
        """``op`` with the supervisor epoch, read as it is sent (``epoch()`` raises
        NotActingError when this supervisor may not act now: nothing is sent)."""
        try:
            return await client.session.request(op, epoch=self.epoch(), **args)
        except StaleSupervisorError as exc:
            if self.on_superseded is not None:
                self.on_superseded(exc.newest)
            raise NotActingError(f"{self.where}: {exc}") from None

    async def start(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> int:
        """See :meth:`scs.launcher.Launcher.start`."""
        try:
            answer = await self._request(
                "start", name=name, argv=argv, cwd=str(cwd), log=str(log_path)
            )
        except trio.TooSlowError:
            raise LaunchError(f"{self.where} cannot be reached") from None
        except RequestError as exc:
            running = (exc.details or {}).get("pid")
            if exc.code == "already-running" and isinstance(running, int):
                self._running[name] = running
                raise AlreadyRunningError(f"{self.where}: {exc}", running) from None
            raise LaunchError(f"{self.where}: {exc}") from None
        except LinkEnded as exc:
            raise LaunchError(f"{self.where}: {exc}") from None
        pid = int(answer["pid"])
        self._running[name] = pid
        return pid

    async def wait(self, name: str, pid: int, *, watching: Callable[[], None] | None = None) -> str:
        """See :meth:`scs.launcher.Launcher.wait`: returns only on the agent's report."""
        key = (name, pid)
        with trio.fail_after(self.timeout):
            await self._up.wait()
        if self._running.get(name) != pid and key not in self._exits:
            raise AdoptError(f"{name} pid {pid} is not a process of {self.where}")
        if watching is not None:
            watching()
        await self._ended.setdefault(key, trio.Event()).wait()
        self._handed_out.add(key)
        await self._ack(name, pid)
        return self._exits[key]

    def recorded(self, name: str) -> int | None:
        """See :meth:`scs.launcher.Launcher.recorded`: as the agent last reported."""
        return self._running.get(name)

    def kill(self, name: str, pid: int) -> None:
        """See :meth:`scs.launcher.Launcher.kill`: a SIGKILL through the agent, now."""
        client = self._client
        if client is None or self._running.get(name) != pid:
            raise NotWatchedError(
                f"{name} pid {pid}: {self.where} is not reachable or runs no such process"
            )
        # (epoch() raises NotActingError when this supervisor may not act: nothing sent)
        message = {"op": "signal", "id": 0, "epoch": self.epoch(), "name": name, "pid": pid}
        link = client.session.link
        link.send_nowait({**message, "signal": "SIGKILL"})
        if not link.write_nowait():
            self._flush_wanted.set()

    async def terminate(self, name: str, pid: int, timeout: float) -> None:
        """See :meth:`scs.launcher.Launcher.terminate`."""
        # Not reachable, or already gone: its exit (if any) comes with the agent.
        with contextlib.suppress(trio.TooSlowError, RequestError, LinkEnded, NotActingError):
            await self._request("stop", name=name, pid=pid, timeout=timeout)
