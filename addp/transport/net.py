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
from .admission import EVICTED, Admission, RateLog, Waiting, source_of
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
    and is closed at once (logged at most once per
    :data:`~addp.transport.admission.REFUSAL_LOG_INTERVAL`). At
    ``max_unauthenticated``, a waiting connection is closed (CLOSE
    :data:`EVICTED`) to make room for the new one, as
    :meth:`~addp.transport.admission.Admission.make_room` chooses: at once the
    oldest of a source address holding at least two places more than the
    newcomer's, else the oldest of the sources holding the most once it has
    waited :data:`~addp.transport.admission.EVICT_MIN_AGE`; never one whose
    credentials are being checked (:meth:`Link.authenticating`). When none
    may go, the new one is refused. A crowd from one host cannot keep out the
    peers of another, and even a crowd from the same address cannot keep out
    a peer that authenticates at once (the supervisor, a backup, a proxy),
    while each of the crowd's connections lives only until newer ones push it
    out.

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
    counts = Admission()
    tls_failures = RateLog()
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
            victim = counts.make_room(source_of(where), trio.current_time())  # before any await
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
        waiting = Waiting(where, trio.CancelScope(), trio.current_time())
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
