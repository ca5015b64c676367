"""Opening links: over a given stream, by connecting to a server, and by serving a port."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

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
    """Open a TCP connection to ``host:port`` and handshake (see :func:`open_link`).

    Raises:
        OSError: the TCP connection could not be made (``TimeoutError`` after
            ``connect_timeout`` seconds).
        LinkEnded: the handshake failed.
    """
    stream: trio.SocketStream | None = None
    with trio.move_on_after(connect_timeout):
        stream = await trio.open_tcp_stream(host, port)
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

    async def _one(stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            where = f"{peer[0]}:{peer[1]}"
        except OSError:
            where = "?"
        try:
            async with open_link(stream, options, name=where, **kwargs) as link:
                await handler(link)
        except LinkEnded as exc:
            _log.info("link %s ended: %s", where, exc)
        except Exception:
            # One connection's failure must not stop the server: log it in full.
            _log.exception("link %s: handler failed; link closed", where)

    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    await trio.serve_listeners(_one, listeners)
