"""Opening links: over a given stream, by connecting to a server, and by serving a port.

:func:`connect` and :func:`serve` reach the network through a replaceable
:class:`Network`: real TCP (:data:`TCP`) unless a caller installed another one
for its task and the tasks it starts, with :func:`use_network` (a simulation
gives each simulated process its own in-memory network view). The seam is
one context-variable lookup per connect or listen; nothing else changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import trio

from .._connection import Connection
from .._errors import LinkBroken, LinkEnded, LinkProtocolError, RemoteProtocolError
from .._frames import DEFAULT_MAX_FRAME_SIZE
from .._options import AddpOptions
from .link import (
    CLOSE_FLUSH_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    TRANSPORT_ERRORS,
    Link,
    suppress_transport,
)

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
) -> AsyncIterator[Link]:
    """Handshake over ``stream`` and yield the open :class:`Link`.

    The stream is closed when the block exits. Raises :class:`LinkEnded`
    (:class:`HandshakeTimeout`, :class:`~addp.LinkProtocolError`, ...) when
    the handshake fails.
    """
    conn = Connection(options, hello=hello, max_frame_size=max_frame_size, now=trio.current_time())
    link = Link(stream, conn, name=name, on_trace=on_trace)
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
        raise LinkBroken(f"transport failed during handshake: {exc!r}") from exc
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
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
    **kwargs: Any,
) -> AsyncIterator[Link]:
    """Open a connection to ``host:port`` and handshake (see :func:`open_link`); over TCP
    unless :func:`use_network` says otherwise.

    Raises:
        OSError: the TCP connection could not be made (``TimeoutError`` after
            ``connect_timeout`` seconds).
        LinkEnded: the handshake failed.
    """
    stream: trio.abc.Stream | None = None
    network = _network.get()
    with trio.move_on_after(connect_timeout):
        stream = await network.open_stream(host, port)
    if stream is None:
        raise TimeoutError(f"connect to {host}:{port} took over {connect_timeout:g} s")
    kwargs.setdefault("name", f"{host}:{port}")
    async with open_link(stream, options, **kwargs) as link:
        yield link


async def serve(
    handler: Callable[[Link], Awaitable[None]],
    port: int,
    options: AddpOptions,
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Accept links on ``host:port`` and run ``handler(link)`` for each one.

    A link that fails its handshake or ends is logged and closed; it never
    stops the server. ``task_status.started`` receives the listeners, so
    ``port=0`` works for tests.
    """

    async def _one(stream: trio.abc.Stream) -> None:
        where = _peer_name(stream)
        try:
            async with open_link(stream, options, name=where, **kwargs) as link:
                await handler(link)
        except LinkEnded as exc:
            _log.info("link %s ended: %s", where, exc)
        except Exception:
            # One connection's failure must not stop the server: log it in full.
            _log.exception("link %s: handler failed; link closed", where)

    listeners = await _network.get().open_listeners(host, port)
    task_status.started(listeners)
    await trio.serve_listeners(_one, listeners)


def _peer_name(stream: trio.abc.Stream) -> str:
    """``host:port`` of the peer of an accepted stream (``?`` when it cannot be told)."""
    sock = getattr(stream, "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else getattr(stream, "peer", None)
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if peer else "?"
