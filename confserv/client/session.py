"""The trio client library: used by ``cfgctl``, the proxy, the supervisor and the tests.

``async with open_client([("127.0.0.1", 2120), ("127.0.0.1", 2130)], ...) as c``
connects to the first server that accepts the registration (a backup answers
``backup-mode`` and is skipped), then ``c.read``, ``c.create``, ``c.update``,
``c.delete``, ``c.subscribe`` and ``c.notifications()``. Every call returns
the server's answer or raises a :class:`~confserv.wire.errors.RequestError`
subclass; a connection lost mid-request raises
:class:`~confserv.wire.errors.ConnectionLostError`, never a silent success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from addp import AddpOptions, LinkEnded
from addp.transport import Link, connect
from confserv.wire.auth import CONTROL_IDENTITY, ClientHandshake, HandshakeError, Purpose
from confserv.wire.errors import (
    BackupModeError,
    ConnectionLostError,
    NoServerError,
)
from confserv.wire.tls import ClientTls

from .exchange import Session as Session  # (re-exported: its home is .exchange)
from .registration import Login, PromotionPolls

Address = tuple[str, int]


def parse_servers(text: str) -> list[Address]:
    """Parse ``HOST:PORT[,HOST:PORT...]``."""
    out: list[Address] = []
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part.strip()!r} is not HOST:PORT")
        out.append((host, int(port)))
    if not out:
        raise ValueError("no server given")
    return out


class ConfigClient:
    """A registered client of a Configuration Server (see module docstring)."""

    def __init__(self, session: Session, address: Address, info: dict[str, Any]) -> None:
        self.session = session
        self.address = address
        self.info = info

    async def read(self, type_name: str, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Objects of a type matching the equality filter."""
        answer = await self.session.request("read", type=type_name, filter=flt or {})
        return list(answer.get("objects", []))

    async def get(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The object of that type and name, or None."""
        found = await self.read(type_name, {"name": name})
        return found[0] if found else None

    async def create(self, type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object; the answer has ``dbid``, ``serial`` and ``epoch``."""
        return await self.session.request("create", type=type_name, object=obj)

    async def update(
        self,
        type_name: str,
        dbid: int,
        delta: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change fields and/or options (``None`` values in options delete)."""
        return await self.session.request(
            "update", type=type_name, dbid=dbid, delta=delta or {}, options=options or {}
        )

    async def delete(self, type_name: str, dbid: int) -> dict[str, Any]:
        """Delete an object."""
        return await self.session.request("delete", type=type_name, dbid=dbid)

    async def subscribe(
        self, type_name: str | None = None, dbid: int | None = None
    ) -> dict[str, Any]:
        """Ask for notifications of a type, one object, or (no arguments) everything."""
        args: dict[str, Any] = {}
        if type_name is not None:
            args["type"] = type_name
        if dbid is not None:
            args["dbid"] = dbid
        return await self.session.request("subscribe", **args)

    async def restore(self, serial: int) -> dict[str, Any]:
        """Changes after ``serial`` (``changes``), or HistoryExpiredError: reload."""
        return await self.session.request("restore", serial=serial)

    async def status(self) -> dict[str, Any]:
        """The server's status."""
        return await self.session.request("status")

    async def notification(self) -> dict[str, Any]:
        """The next change notification (the ``notify`` map's change)."""
        msg = await self.session.next_notification()
        return dict(msg.get("notify", msg))


@asynccontextmanager
async def _session_for(link: Link) -> AsyncIterator[Session]:
    """Run a session's reader for the block; the block's own error comes out unwrapped."""
    session = Session(link)
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run_reader)
        try:
            yield session
        except BaseException as exc:
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


def _tls_arguments(tls: ClientTls | None) -> dict[str, Any]:
    """:func:`addp.transport.connect`'s TLS arguments (none: plain TCP)."""
    if tls is None:
        return {}
    return {"ssl_context": tls.context, "server_hostname": tls.server_name}


@asynccontextmanager
async def open_client(
    servers: Sequence[Address],
    *,
    app: str,
    user: str,
    password: str,
    app_type: str = "client",
    daemon: bool = False,
    addp: AddpOptions | None = None,
    connect_timeout: float = 10.0,
    tls: ClientTls | None = None,
    ticket: str | None = None,
    promotion_wait: float = 0.0,
    suspects: Collection[Address] = (),
) -> AsyncIterator[ConfigClient]:
    """Connect and register with the first server of ``servers`` that serves.

    A backup's ``backup-mode`` answer names the primary; that address is
    tried too, after the given ones. ``tls``: connect over TLS, verifying
    each server's certificate (:func:`~confserv.wire.tls.client_context`);
    a server that fails the TLS handshake is one reason of the
    :class:`NoServerError`, e.g. ``certificate verify failed: ...``.

    After a failover (issue 16): ``ticket`` (the last server's, in
    :attr:`ConfigClient.info`) resumes the session without a password check,
    the password being sent only if the ticket is refused; a backup that says
    it lost its primary (``primary_lost``), or names as primary one of
    ``suspects`` (the server just lost), is asked again on the same
    connection, :data:`PROMOTION_POLL` apart, for up to ``promotion_wait``
    seconds: it is likely the one being promoted, and the server it names
    is likely dead or stopped.

    Raises:
        NoServerError: every server refused or could not be reached; the
            message lists each server's reason.
        AuthError, DuplicateApplicationError: the registration was refused.
    """
    reasons: list[str] = []
    candidates = list(servers)
    for host, port in candidates:
        yielded = False
        try:
            async with AsyncExitStack() as stack:
                # Context managers are entered outside any timeout scope: a scope
                # must not end while a nursery opened inside it lives on.
                link = await stack.enter_async_context(
                    connect(
                        host,
                        port,
                        addp or AddpOptions(),
                        connect_timeout=connect_timeout,
                        handshake_timeout=connect_timeout,
                        **_tls_arguments(tls),
                    )
                )
                session = await stack.enter_async_context(_session_for(link))
                login = Login(app, app_type, user, password, daemon, ticket)
                polls = PromotionPolls(trio.current_time() + promotion_wait, suspects)
                while True:
                    try:
                        info = await login.register(session, connect_timeout, (host, port))
                        break
                    except BackupModeError as exc:
                        if not polls.again(exc, _hint(exc.primary)):
                            raise
                    await trio.sleep(polls.delay)
                yielded = True
                yield ConfigClient(session, (host, port), info)
                return
        except (OSError, LinkEnded, trio.TooSlowError, BackupModeError, ConnectionLostError) as exc:
            if yielded:
                raise
            reasons.append(f"{host}:{port}: {exc or type(exc).__name__}")
            if isinstance(exc, BackupModeError) and exc.primary:
                try:
                    hint = parse_servers(exc.primary)[0]
                except ValueError:
                    continue
                if hint not in candidates:
                    candidates.append(hint)
    raise NoServerError("no Configuration Server would serve: " + "; ".join(reasons))


def _hint(primary: str | None) -> Address | None:
    """The address a backup names as primary, or None."""
    try:
        return parse_servers(primary)[0] if primary else None
    except ValueError:
        return None


class ManagementClient:
    """An authenticated connection to a server's management port."""

    def __init__(self, session: Session, status: dict[str, Any], server: str = "") -> None:
        self.session = session
        self.initial_status = status
        #: The identity the server proved (its section name; ``scs`` for a control port).
        self.server = server

    async def status(self) -> dict[str, Any]:
        """Role, epoch, last serial, pid, uptime, clients."""
        return await self.session.request("status")

    async def switch_to_primary(
        self, *, force: bool = False, over: int | None = None, supervisor_epoch: int | None = None
    ) -> dict[str, Any]:
        """Promote the server (``force`` only with proof that the primary is dead;
        ``over``: the epoch it held, so that a lease that moved on since is kept;
        ``supervisor_epoch``: the sending supervisor's, refused with
        ``StaleSupervisorError`` when the server has seen a newer one)."""
        args: dict[str, Any] = {"force": force}
        if over is not None:
            args["over"] = over
        return await self.session.request("switch-to-primary", **args, **_fenced(supervisor_epoch))

    async def switch_to_backup(self, *, supervisor_epoch: int | None = None) -> dict[str, Any]:
        """Planned hand-over: the server releases the lease and follows the new primary
        (``supervisor_epoch``: as for :meth:`switch_to_primary`)."""
        return await self.session.request("switch-to-backup", **_fenced(supervisor_epoch))

    async def follow(
        self, host: str, port: int, *, supervisor_epoch: int | None = None
    ) -> dict[str, Any]:
        """Tell a proxy to follow the primary at ``host:port`` (its management port)
        now (``supervisor_epoch``: as for :meth:`switch_to_primary`)."""
        return await self.session.request(
            "follow", host=host, port=port, **_fenced(supervisor_epoch)
        )

    async def reload(self) -> dict[str, Any]:
        """Operator's reload from the database (after alarm 20170)."""
        return await self.session.request("reload")

    async def watch(self) -> dict[str, Any]:
        """Ask for role pushes; returns the current status."""
        return await self.session.request("watch")

    async def push(self) -> dict[str, Any]:
        """The next role push."""
        return await self.session.next_notification()


def _fenced(supervisor_epoch: int | None) -> dict[str, int]:
    """The ``supervisor_epoch`` argument of a supervisor's command, when given."""
    return {} if supervisor_epoch is None else {"supervisor_epoch": supervisor_epoch}


@asynccontextmanager
async def open_management(
    host: str,
    port: int,
    secret: str,
    *,
    expect: str | None = None,
    purpose: Purpose | None = None,
    addp: AddpOptions | None = None,
    timeout: float = 10.0,
    tls: ClientTls | None = None,
) -> AsyncIterator[ManagementClient]:
    """Connect to a management port and authenticate both ways with the shared secret.

    ``expect``: the server's name (its section, its Application) the caller
    means to reach; a server announcing another name is refused before any
    answer is sent, so no answer can be relayed to another server. None
    takes the name the server announces (:attr:`ManagementClient.server`).
    ``purpose``: the scheme to speak, :attr:`Purpose.MANAGEMENT` or
    :attr:`Purpose.CONTROL`; None speaks whichever of the two the port
    announces (a supervisor's control port too). The server must prove it
    knows the secret before any command is sent. ``tls``: over TLS, the
    server's certificate verified (before any of the handshake is sent).

    Raises:
        AuthError: the server refused the client's proof, or
            :class:`~confserv.wire.auth.HandshakeError`: the server did not
            prove it knows the secret, is not ``expect``, or speaks another
            scheme (one line; the connection is closed).
        OSError, LinkEnded: the port could not be reached.
    """
    purposes = (Purpose.MANAGEMENT, Purpose.CONTROL) if purpose is None else (purpose,)
    async with AsyncExitStack() as stack:
        link = await stack.enter_async_context(
            connect(
                host,
                port,
                addp or AddpOptions(),
                connect_timeout=timeout,
                handshake_timeout=timeout,
                **_tls_arguments(tls),
            )
        )
        session = await stack.enter_async_context(_session_for(link))
        handshake = ClientHandshake(purposes, secret, expect)
        with trio.fail_after(timeout):
            # A management (or control) port sends its challenge at once; a client port
            # waits for its client to speak: say so soon, not when its auth-timeout ends.
            first = None
            with trio.move_on_after(min(timeout, CHALLENGE_WAIT)):
                first = await session.first_message()
            if first is None:
                why = f": {session.ended}" if session.ended else ""
                if not why:
                    why = (
                        f" within {min(timeout, CHALLENGE_WAIT):g} s: is it a client port? "
                        "(give the server's management-port)"
                    )
                raise ConnectionLostError(f"{host}:{port} sent no management challenge{why}")
            try:
                status = await session.request("auth", **handshake.challenge(first))
                handshake.verify(status)
            except HandshakeError as exc:
                await link.aclose(f"authentication failed: {exc}")
                raise HandshakeError(f"{host}:{port}: {exc}") from None
        status.pop("proof", None)
        status.pop("scheme", None)
        yield ManagementClient(session, status, handshake.identity or "")


#: Seconds a management or control port has to send its challenge (it sends it at once).
CHALLENGE_WAIT = 3.0


def open_control(
    port: int,
    secret: str,
    *,
    host: str = "127.0.0.1",
    addp: AddpOptions | None = None,
    timeout: float = 10.0,
    tls: ClientTls | None = None,
) -> AbstractAsyncContextManager[ManagementClient]:
    """Connect to a supervisor's control port (``[scs] control-port``) with
    ``control-secret``: :func:`open_management` with the control scheme and identity."""
    return open_management(
        host,
        port,
        secret,
        expect=CONTROL_IDENTITY,
        purpose=Purpose.CONTROL,
        addp=addp,
        timeout=timeout,
        tls=tls,
    )
