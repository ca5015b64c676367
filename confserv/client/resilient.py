"""A client that follows a failover on its own.

:func:`open_resilient_client` keeps one registered connection to whichever
server of the list serves (the primary). When the connection is lost it
reconnects (the Application object's ``reconnect_timeout`` and
``reconnect_attempts`` say how), without limit unless
``give_up_after`` is set: each server is tried ``reconnect_attempts`` times,
``reconnect_timeout`` apart, before the next (a backup's answer names the
primary, which is tried at once); :class:`~confserv.client.reconnect.ReconnectPolicy`
decides which server and when. Then:

- a read that was cut off is sent again: reads are idempotent;
- a write that was cut off raises :class:`~confserv.wire.errors.ConnectionLostError`
  (its outcome is unknown) after the new connection is up, so the caller can
  check and retry; a write is never reported done unless the server said so;
- a subscription is renewed and the changes missed meanwhile are restored
  from the History Log, so notifications continue in serial order with no gap
  (or :class:`~confserv.wire.errors.HistoryExpiredError` tells the caller to reload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from addp import AddpOptions
from confserv.wire.errors import BackupModeError, ConnectionLostError, NoServerError, NotSentError
from confserv.wire.tls import ClientTls

from .reconnect import Decision, GiveUp, ReconnectPolicy, Wait
from .session import Address, ConfigClient, open_client

T = TypeVar("T")

#: Handshake bound on a server the client just lost, seconds: it may be stopped, and a
#: stopped server's kernel still accepts connections (issue 16: a 6 s failover).
SUSPECT_TIMEOUT = 0.25

#: ADDP on the client's connection unless the caller says otherwise: poll after
#: 1 s of silence, and ask the server to do the same.
DEFAULT_ADDP = AddpOptions.addp(timeout=1.0, remote_timeout=1.0)


class ResilientClient:
    """See module docstring. Create with :func:`open_resilient_client`.

    One background task owns the connection (and the nursery under it); the
    calls below may come from any task and only exchange messages over it.
    """

    def __init__(
        self,
        servers: Sequence[Address],
        *,
        reconnect_timeout: float,
        reconnect_attempts: int,
        give_up_after: float | None,
        promotion_wait: float = 10.0,
        **register: Any,
    ) -> None:
        self.servers = list(servers)
        self.reconnect_timeout = reconnect_timeout
        self.reconnect_attempts = max(1, reconnect_attempts)
        self.give_up_after = give_up_after
        self.policy = ReconnectPolicy(
            len(self.servers),
            timeout=reconnect_timeout,
            attempts=reconnect_attempts,
            give_up_after=give_up_after,
        )
        self._register = register
        self._client: ConfigClient | None = None
        self._up = trio.Event()
        self._failed: NoServerError | None = None
        self._subscriptions: list[tuple[str | None, int | None]] = []
        self._last_serial = 0
        self._backlog: list[dict[str, Any]] = []
        self._epoch = 0
        self.stale_refused = 0
        self.connects = 0
        #: The last server's resumption ticket (None: log in with the password).
        self._ticket: str | None = None
        #: Servers lost since the last connection up (tried last, briefly).
        self._suspects: set[Address] = set()
        #: How long a backup that lost its primary is asked again (see open_client).
        self.promotion_wait = promotion_wait

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection up until cancelled (started by :func:`open_resilient_client`).

        :attr:`policy` decides which server to try, when, and when to give up;
        this task carries out its attempts.
        """
        policy = self.policy
        started = False
        policy.begin(trio.current_time())
        last_error: Exception | None = None
        while True:
            decision: Decision | None = None
            try:
                server = self.servers[policy.server]
                async with open_client([server], **self._attempt(server)) as client:
                    self._client = client
                    self.connects += 1
                    self._suspects.clear()
                    ticket = client.info.get("ticket")
                    self._ticket = ticket if isinstance(ticket, str) else None
                    await self._resubscribe(client)
                    # Where it is up: a backup tried may have named its primary.
                    server = client.address
                    on = self.servers.index(server) if server in self.servers else None
                    policy.connected(on)
                    self._up.set()
                    if not started:
                        started = True
                        task_status.started()
                    await client.session.closed.wait()
                # the server just lost is tried last, and briefly; at once, unless it flaps
                self._suspects.add(server)
                decision = policy.lost(trio.current_time())
                last_error = None
            except (NoServerError, ConnectionLostError) as exc:
                last_error = exc
                decision = policy.failed(trio.current_time())
            finally:
                self._client = None
                if self._up.is_set():
                    self._up = trio.Event()
            if isinstance(decision, GiveUp):
                self._failed = NoServerError(f"gave up after {decision.after:g} s: {last_error}")
                if not started:
                    raise self._failed
                self._up.set()  # wake waiters so that they see the failure
                return
            if isinstance(decision, Wait):
                await trio.sleep_until(decision.until)

    def _attempt(self, server: Address) -> dict[str, Any]:
        """``open_client``'s arguments for one attempt on ``server`` (issue 16): the ticket
        of the last session, the servers just lost as suspects (a backup naming one is
        asked again, not left for it), and, on a server just lost itself, a handshake
        bound of :data:`SUSPECT_TIMEOUT` (a stopped server's kernel still accepts)."""
        register = dict(self._register, ticket=self._ticket, suspects=frozenset(self._suspects))
        register.setdefault("promotion_wait", self.promotion_wait)
        if server in self._suspects:
            timeout = float(register.get("connect_timeout", 10.0))
            register["connect_timeout"] = min(timeout, SUSPECT_TIMEOUT)
        return register

    async def _current(self) -> ConfigClient:
        while self._client is None:
            if self._failed is not None:
                raise self._failed
            await self._up.wait()
            if self._failed is not None:
                raise self._failed
        return self._client

    async def _resubscribe(self, client: ConfigClient) -> None:
        if not self._subscriptions:
            return
        for type_name, dbid in self._subscriptions:
            await client.subscribe(type_name, dbid)
        restored = await client.restore(self._last_serial)
        self._backlog.extend(c for c in restored["changes"] if self._wanted(c))

    def _wanted(self, change: dict[str, Any]) -> bool:
        return any(
            (t is None or t == change["type"]) and (d is None or d == change["dbid"])
            for t, d in self._subscriptions
        )

    async def _retrying(
        self, call: Callable[[ConfigClient], Awaitable[T]], *, idempotent: bool
    ) -> T:
        while True:
            client = await self._current()
            try:
                return await call(client)
            except NotSentError:
                await client.session.closed.wait()  # never sent: safe to send again
            except BackupModeError:
                # The server stopped being primary: nothing was written, so any
                # request may be sent again once reconnected to the primary.
                await client.session.link.aclose("server is not primary")
                await client.session.closed.wait()
            except ConnectionLostError:
                await client.session.closed.wait()
                if not idempotent:
                    raise

    # -- the ConfigClient calls ----------------------------------------------

    @property
    def address(self) -> Address | None:
        """The server currently connected to, if any."""
        return None if self._client is None else self._client.address

    async def read(self, type_name: str, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Objects of a type matching the filter (retried across a failover)."""
        return await self._retrying(lambda c: c.read(type_name, flt), idempotent=True)

    async def get(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The object of that type and name, or None (retried across a failover)."""
        found = await self.read(type_name, {"name": name})
        return found[0] if found else None

    async def create(self, type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; ConnectionLostError when cut off (outcome unknown)."""
        return await self._retrying(lambda c: c.create(type_name, obj), idempotent=False)

    async def update(
        self,
        type_name: str,
        dbid: int,
        delta: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Update; ConnectionLostError when cut off (outcome unknown)."""
        return await self._retrying(
            lambda c: c.update(type_name, dbid, delta, options), idempotent=False
        )

    async def delete(self, type_name: str, dbid: int) -> dict[str, Any]:
        """Delete; ConnectionLostError when cut off (outcome unknown)."""
        return await self._retrying(lambda c: c.delete(type_name, dbid), idempotent=False)

    async def status(self) -> dict[str, Any]:
        """The serving server's status."""
        return await self._retrying(lambda c: c.status(), idempotent=True)

    async def subscribe(self, type_name: str | None = None, dbid: int | None = None) -> None:
        """Subscribe, and keep the subscription across failovers."""
        answer = await self._retrying(lambda c: c.subscribe(type_name, dbid), idempotent=True)
        if not self._subscriptions:
            self._last_serial = int(answer["serial"])
        self._subscriptions.append((type_name, dbid))

    async def notification(self) -> dict[str, Any]:
        """The next change, in serial order, across failovers."""
        while True:
            if self._backlog:
                change = self._backlog.pop(0)
            else:
                client = await self._current()
                try:
                    change = await client.notification()
                except ConnectionLostError:
                    await client.session.closed.wait()
                    continue
            if int(change.get("epoch", 0)) < self._epoch:
                self.stale_refused += 1  # from a deposed primary: never applied (invariant 3)
                continue
            if change["serial"] > self._last_serial:
                self._last_serial = int(change["serial"])
                self._epoch = max(self._epoch, int(change.get("epoch", 0)))
                return change


@asynccontextmanager
async def open_resilient_client(
    servers: Sequence[Address],
    *,
    app: str,
    user: str,
    password: str,
    reconnect_timeout: float = 10.0,
    reconnect_attempts: int = 1,
    give_up_after: float | None = None,
    addp: AddpOptions | None = DEFAULT_ADDP,
    connect_timeout: float = 2.0,
    tls: ClientTls | None = None,
    **register: Any,
) -> AsyncIterator[ResilientClient]:
    """Connect (see :class:`ResilientClient`) and keep connected for the block's lifetime.

    ``tls``: every connection over TLS, each server's certificate verified
    (:func:`~confserv.client.session.open_client`).

    ADDP is on by default (:data:`DEFAULT_ADDP`): a hung or cut-off server is
    noticed and left, not waited on forever; likewise a server that accepts
    the connection but does not handshake within ``connect_timeout``.
    """
    client = ResilientClient(
        servers,
        reconnect_timeout=reconnect_timeout,
        reconnect_attempts=reconnect_attempts,
        give_up_after=give_up_after,
        app=app,
        user=user,
        password=password,
        addp=addp,
        connect_timeout=connect_timeout,
        tls=tls,
        **register,
    )
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        except BaseException as exc:  # carried out of the nursery unwrapped
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
