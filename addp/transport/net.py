"""Opening links: over a given stream, by connecting to a server, and by serving a port.

:func:`connect` and :func:`serve` reach the network through a replaceable
:class:`Network`: real TCP (:data:`TCP`) unless a caller installed another one
for its task and the tasks it starts, with :func:`use_network` (a simulation
gives each simulated process its own in-memory network view). The seam is
one context-variable lookup per connect or listen; nothing else changes.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import trio

from .._connection import Connection
from .._errors import LinkBroken, LinkEnded, LinkProtocolError, RemoteProtocolError
from .._events import ConnectionClosed, PeerLostEvent
from .._frames import DEFAULT_MAX_FRAME_SIZE
from .._guard import DEFAULT_FRAME_TIMEOUT
from .._options import AddpOptions
from .ends import TRANSPORT_ERRORS, end_reason, suppress_transport
from .link import CLOSE_FLUSH_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, Link
from .tls import (
    PLAIN_ON_TLS_PORT,
    PlainPeer,
    TlsHandshakeError,
    client_handshake,
    server_handshake,
    tls_reason,
)

#: Largest frame an unauthenticated peer may send on a port with an
#: authentication deadline (its requests before authenticating are small).
DEFAULT_UNAUTHENTICATED_FRAME_SIZE = 64 * 1024
#: The CLOSE reason of an unauthenticated connection closed to make room for a newer one.
EVICTED = "too many connections not authenticated yet: the oldest is closed first; try again"
#: An unauthenticated connection is closed for a newcomer only after this many seconds:
#: a crowd then turns a port's places over at most once a second (each admission costs
#: the server a handshake), and a peer that authenticates at once still finds one.
EVICT_MIN_AGE = 1.0
#: Seconds between two log lines about refused connections on one port.
REFUSAL_LOG_INTERVAL = 10.0
#: Connections over a cap of a TLS port told why (over TLS, a handshake each, of at
#: most CLOSE_FLUSH_TIMEOUT) at once; past it they are closed without a word.
MAX_TLS_REFUSALS = 16

_log = logging.getLogger("addp")


class Network(Protocol):
    """Where :func:`connect` and :func:`serve` get their streams and listeners."""

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        """A connected stream to ``host:port``; ``OSError`` when it cannot be made."""
        ...

    async def open_listeners(self, host: str, port: int) -> list[trio.SocketListener]:
        """Listeners on ``host:port`` (``port`` 0: any free one); ``OSError`` when the
        address cannot be had. Another network returns listeners shaped alike: their
        ``socket.getsockname()`` gives the address."""
        ...


class TcpNetwork:
    """The real network: trio's TCP streams and listeners (the default)."""

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        """``trio.open_tcp_stream``."""
        return await trio.open_tcp_stream(host, port)

    async def open_listeners(self, host: str, port: int) -> list[trio.SocketListener]:
        """``trio.open_tcp_listeners``."""
        return await trio.open_tcp_listeners(port, host=host)


#: The real network, used unless :func:`use_network` installed another.
TCP: Network = TcpNetwork()

_network: ContextVar[Network] = ContextVar("addp_network", default=TCP)


def current_network() -> Network:
    """The network this task connects and listens through."""
    return _network.get()


@contextmanager
def use_network(network: Network) -> Iterator[None]:
    """Connect and listen through ``network`` in this task, and in the tasks it starts
    from here on (trio tasks inherit their parent's context), for the block's lifetime."""
    token = _network.set(network)
    try:
        yield
    finally:
        _network.reset(token)


@asynccontextmanager
async def open_link(
    stream: trio.abc.Stream,
    options: AddpOptions,
    *,
    hello: Any = None,
    name: str = "link",
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    on_trace: Callable[[str], None] | None = None,
    auth_timeout: float | None = None,
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    unauthenticated_frame_size: int | None = None,
    on_link: Callable[[Link], None] | None = None,
    initiator: bool = False,
) -> AsyncIterator[Link]:
    """Handshake over ``stream`` and yield the open :class:`Link`.

    The stream is closed when the block exits. Raises :class:`LinkEnded`
    (:class:`HandshakeTimeout`, :class:`~addp.LinkProtocolError`, ...) when
    the handshake fails. ``auth_timeout``: the peer must be declared
    authenticated (:meth:`Link.authenticate`) within that many seconds, and
    until then sends frames of at most ``unauthenticated_frame_size`` bytes;
    ``frame_timeout``: a frame must be complete within that many seconds of
    its first byte (see :class:`~addp._guard.ConnectionGuard`). ``on_link``
    is called with the link before its handshake. ``initiator``: this side opened
    the connection (:func:`connect` says so), and leaves the keep-alive polling
    to the accepting side (it polls only after ``T + T/4`` of silence).
    """
    conn = Connection(
        options,
        hello=hello,
        max_frame_size=max_frame_size,
        now=trio.current_time(),
        auth_timeout=auth_timeout,
        frame_timeout=frame_timeout,
        unauthenticated_frame_size=unauthenticated_frame_size,
        initiator=initiator,
    )
    link = Link(stream, conn, name=name, on_trace=on_trace)
    if on_link is not None:
        on_link(link)
    try:
        await link._handshake(handshake_timeout)
    except RemoteProtocolError as exc:
        conn.close(f"protocol error: {exc}", trio.current_time())
        with trio.move_on_after(CLOSE_FLUSH_TIMEOUT), suppress_transport():
            await link._flush()
        await trio.aclose_forcefully(stream)
        raise LinkProtocolError(f"handshake failed: {exc}") from exc
    except TRANSPORT_ERRORS as exc:
        await trio.aclose_forcefully(stream)
        if isinstance(stream, trio.SSLStream):  # e.g. the server refused our certificate
            raise TlsHandshakeError(name, tls_reason(exc)) from None
        raise LinkBroken(f"transport failed during handshake: {exc!r}") from exc
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    # A refusal's CLOSE comes with the peer's HELLO: its reason is known before the
    # reader runs, so that a first send says it rather than "link is closing".
    for event in link._pending:
        if isinstance(event, (PeerLostEvent, ConnectionClosed)):
            link._closing = end_reason(event)
    # The body's exception is carried out of the nursery by hand, so callers
    # catch LinkEnded itself rather than an ExceptionGroup wrapping it.
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._run_reader)
        try:
            yield link
        except BaseException as exc:
            body_error = exc
        finally:
            await link.aclose()
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    options: AddpOptions,
    *,
    connect_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    **kwargs: Any,
) -> AsyncIterator[Link]:
    """Open a connection to ``host:port`` and handshake (see :func:`open_link`); over TCP
    unless :func:`use_network` says otherwise.

    With ``ssl_context`` the link runs over TLS: the TLS handshake is done
    first, within ``connect_timeout`` too, verifying the server's certificate
    as the context says, for ``server_hostname`` (default ``host``).

    Raises:
        OSError: the TCP connection could not be made (``TimeoutError`` after
            ``connect_timeout`` seconds).
        TlsHandshakeError: the TLS handshake failed (one line: why).
        LinkEnded: the handshake failed.
    """
    where = f"{host}:{port}"
    raw: trio.abc.Stream | None = None
    stream: trio.abc.Stream | None = None
    network = _network.get()
    with trio.move_on_after(connect_timeout):
        raw = await network.open_stream(host, port)
        if ssl_context is None:
            stream = raw
        else:
            stream = await client_handshake(raw, ssl_context, server_hostname or host, where)
    if stream is None:
        if raw is not None:
            await trio.aclose_forcefully(raw)
            raise TlsHandshakeError(where, f"not finished within {connect_timeout:g} s")
        raise TimeoutError(f"connect to {where} took over {connect_timeout:g} s")
    kwargs.setdefault("name", where)
    kwargs.setdefault("initiator", True)
    async with open_link(stream, options, **kwargs) as link:
        yield link


async def serve(
    handler: Callable[[Link], Awaitable[None]],
    port: int,
    options: AddpOptions,
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    max_connections: int | None = None,
    max_unauthenticated: int | None = None,
    auth_timeout: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> None:
    """Accept links on ``host:port`` and run ``handler(link)`` for each one.

    A link that fails its handshake or ends is logged and closed; it never
    stops the server. ``task_status.started`` receives the listeners, so
    ``port=0`` works for tests.

    ``auth_timeout`` (seconds, None: none): each link must be declared
    authenticated by its handler (:meth:`Link.authenticate`) within that
    time, and sends small frames until then (``unauthenticated_frame_size``,
    :data:`DEFAULT_UNAUTHENTICATED_FRAME_SIZE` by default); a link that does
    not is closed with a CLOSE saying so. ``max_connections`` caps the open
    links, ``max_unauthenticated`` those not authenticated yet. A connection
    over ``max_connections`` gets this side's HELLO and a CLOSE naming the cap,
    and is closed at once (logged at most once per :data:`REFUSAL_LOG_INTERVAL`).
    At ``max_unauthenticated``, the *oldest* unauthenticated connection is
    closed (CLOSE :data:`EVICTED`) to make room for the new one, if it has
    waited :data:`EVICT_MIN_AGE` and its credentials are not being checked
    (:meth:`Link.authenticating`); else the new one is refused. A crowd that
    keeps the cap full cannot keep out a peer that authenticates at once (the
    supervisor, a backup, a proxy), while each of the crowd's connections
    lives only until newer ones push it out.

    ``ssl_context`` (a server-side context): every connection speaks TLS. Its
    TLS handshake must finish within ``auth_timeout`` (``handshake_timeout``
    when None) and counts against both caps meanwhile; one that fails or
    stalls is closed, logged at most once per interval with a count. A peer
    speaking plain ADDP is answered in plain ADDP with a CLOSE saying the
    port speaks TLS. A connection over a cap is refused over TLS too (its
    handshake bounded by :data:`CLOSE_FLUSH_TIMEOUT`, at most
    :data:`MAX_TLS_REFUSALS` at once; past that closed without a word).
    """
    if auth_timeout is not None:
        kwargs.setdefault("unauthenticated_frame_size", DEFAULT_UNAUTHENTICATED_FRAME_SIZE)
    counts = _Counts()
    tls_failures = _RateLog()
    tls_timeout = auth_timeout or kwargs.get("handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT)
    frame_size = kwargs.get("max_frame_size")

    async def _tls(stream: trio.abc.Stream, where: str, timeout: float) -> trio.abc.Stream | None:
        """The stream over TLS, or None after answering a plain peer or logging a failure."""
        assert ssl_context is not None
        plain: trio.abc.Stream | None = None
        try:
            with trio.fail_after(timeout):
                return await server_handshake(stream, ssl_context, where)
        except PlainPeer as exc:
            plain, reason = exc.stream, "the peer did not speak TLS (plain ADDP)"
        except TlsHandshakeError as exc:
            reason = exc.reason
        except trio.TooSlowError:
            reason = f"not finished within {timeout:g} s"
        tls_failures.note(where, f"TLS handshake failed: {reason}", trio.current_time())
        if plain is not None:  # a plain ADDP client: told in plain ADDP
            await _refuse(plain, options, PLAIN_ON_TLS_PORT, frame_size)
        await trio.aclose_forcefully(stream)
        return None

    async def _one(stream: trio.abc.Stream) -> None:
        where = _peer_name(stream)
        full = counts.refusal(max_connections, max_unauthenticated, auth_timeout is not None)
        victim = None
        if full is not None and full.startswith("too many connections not authenticated"):
            victim = counts.evict_oldest(trio.current_time())  # its place: before any await
            if victim is not None:
                full = counts.refusal(max_connections, max_unauthenticated, True)
        if full is not None:
            counts.log_refusal(where, full, trio.current_time())
            secured: trio.abc.Stream | None = stream
            if ssl_context is not None and counts.refusing >= MAX_TLS_REFUSALS:
                secured = None  # a flood: closed without a word rather than held
            elif ssl_context is not None:
                counts.refusing += 1
                try:
                    secured = await _tls(stream, where, CLOSE_FLUSH_TIMEOUT)
                finally:
                    counts.refusing -= 1
            if secured is not None:
                await _refuse(secured, options, full, frame_size)
            await trio.aclose_forcefully(stream)
            return
        counts.open += 1
        authenticated = auth_timeout is None
        waiting = _Waiting(where, trio.CancelScope(), trio.current_time())
        if not authenticated:
            counts.wait(waiting)
        if victim is not None:
            counts.log_refusal(victim.where, EVICTED, trio.current_time())
            await victim.close(EVICTED)

        def on_authenticated() -> None:
            nonlocal authenticated
            if not authenticated:
                authenticated = True
                counts.done_waiting(waiting)

        def on_authenticating(busy: bool) -> None:
            waiting.busy = busy

        def on_link(link: Link) -> None:
            link.on_authenticated = on_authenticated
            link.on_authenticating = on_authenticating
            waiting.link = link

        try:
            with waiting.scope:
                if ssl_context is not None:
                    tls = await _tls(stream, where, tls_timeout)
                    if tls is None:
                        return
                    stream = tls
                async with open_link(
                    stream,
                    options,
                    name=where,
                    auth_timeout=auth_timeout,
                    on_link=on_link,
                    **kwargs,
                ) as link:
                    await handler(link)
            if waiting.scope.cancelled_caught:
                await trio.aclose_forcefully(stream)
        except LinkEnded as exc:
            _log.info("link %s ended: %s", where, exc)
        except Exception:
            # One connection's failure must not stop the server: log it in full.
            _log.exception("link %s: handler failed; link closed", where)
        finally:
            counts.open -= 1
            on_authenticated()

    listeners = await _network.get().open_listeners(host, port)
    task_status.started(listeners)
    await trio.serve_listeners(_one, listeners)


class _RateLog:
    """Lines about refused connections of one kind: the first, then at most one per
    :data:`REFUSAL_LOG_INTERVAL` with the count of those not told."""

    def __init__(self) -> None:
        self.refused = 0
        self._logged_at: float | None = None

    def note(self, where: str, reason: str, now: float) -> None:
        """Count one refusal; log it if the interval since the last line has passed."""
        self.refused += 1
        if self._logged_at is not None and now < self._logged_at + REFUSAL_LOG_INTERVAL:
            return
        more = f" ({self.refused - 1} more refused before it)" if self.refused > 1 else ""
        _log.info("link %s refused: %s%s", where, reason, more)
        self._logged_at, self.refused = now, 0


class _Waiting:
    """One connection of a port not authenticated yet: what evicting it takes."""

    def __init__(self, where: str, scope: trio.CancelScope, since: float = 0.0) -> None:
        self.where = where
        self.since = since  # when it was let in
        self.scope = scope  # the connection's task (cancelled: closed without a word)
        self.link: Link | None = None  # once its ADDP handshake began: closed with a CLOSE
        self.busy = False  # its credentials are being checked (Link.authenticating)

    async def close(self, reason: str) -> None:
        """Close it: a CLOSE with ``reason`` when it has a link, else cancel its task."""
        if self.link is not None:
            await self.link.aclose(reason)
        else:
            self.scope.cancel()


class _Counts:
    """Open and unauthenticated links of one port, and its refusals (for the log)."""

    def __init__(self) -> None:
        self.open = 0
        #: The unauthenticated connections, oldest first (the next to be evicted).
        self._waiting: dict[_Waiting, None] = {}
        #: Connections over a cap being refused over TLS now.
        self.refusing = 0
        self._refusals = _RateLog()

    @property
    def unauthenticated(self) -> int:
        """How many connections have not authenticated yet."""
        return len(self._waiting)

    def wait(self, waiting: _Waiting) -> None:
        """A new connection is not authenticated yet."""
        self._waiting[waiting] = None

    def done_waiting(self, waiting: _Waiting) -> None:
        """``waiting`` authenticated, ended or was evicted."""
        self._waiting.pop(waiting, None)

    def evict_oldest(self, now: float) -> _Waiting | None:
        """Take the oldest unauthenticated connection whose credentials are not being
        checked out of the count, if it has waited :data:`EVICT_MIN_AGE` (None: none)."""
        oldest = next((w for w in self._waiting if not w.busy), None)
        if oldest is None or now - oldest.since < EVICT_MIN_AGE:
            return None
        del self._waiting[oldest]
        return oldest

    def refusal(
        self, max_connections: int | None, max_unauthenticated: int | None, counted: bool
    ) -> str | None:
        """Why one more connection is refused now, or None to accept it."""
        if max_connections is not None and self.open >= max_connections:
            return f"too many connections: this port serves at most {max_connections}; try later"
        waiting = self.unauthenticated
        if counted and max_unauthenticated is not None and waiting >= max_unauthenticated:
            return (
                f"too many connections not authenticated yet (at most "
                f"{max_unauthenticated}); try later"
            )
        return None

    def log_refusal(self, where: str, reason: str, now: float) -> None:
        """Log the first refusal, then at most one line per interval with the count."""
        self._refusals.note(where, reason, now)


async def _refuse(
    stream: trio.abc.Stream, options: AddpOptions, reason: str, max_frame_size: int | None
) -> None:
    """Send this side's HELLO and a CLOSE with ``reason`` without reading, then close."""
    now = trio.current_time()
    conn = Connection(options, max_frame_size=max_frame_size or DEFAULT_MAX_FRAME_SIZE, now=now)
    conn.start(now)
    conn.close(reason, now)
    with trio.move_on_after(CLOSE_FLUSH_TIMEOUT), suppress_transport():
        await stream.send_all(conn.data_to_send())
    await trio.aclose_forcefully(stream)


def _peer_name(stream: trio.abc.Stream) -> str:
    """``host:port`` of the peer of an accepted stream (``?`` when it cannot be told)."""
    sock = getattr(stream, "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else getattr(stream, "peer", None)
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if peer else "?"
