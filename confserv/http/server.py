"""The health and metrics port: HTTP/1.1 through ``h11`` on trio.

``h11`` parses and frames (a sans-IO state machine); this module only moves
bytes and applies the bounds every port of this project has: at most
:data:`MAX_CONNECTIONS` at once (the excess gets one 503 and is closed), a
request head of at most :data:`MAX_HEAD` bytes and no body beyond it,
:data:`TIMEOUT` seconds for a request to arrive (an idle keep-alive
connection is closed quietly then). A malformed request gets one 400 answer
naming what was wrong, one log line (``refused``), and its connection is
closed; nothing else is affected. Requests are answered by ``handler``
(method, target) synchronously: nothing it answers waits on anything.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import trio

from .probe import Reply

#: Connections served at once.
MAX_CONNECTIONS = 64
#: The longest request head (request line and headers), and body, in bytes.
MAX_HEAD = 8192
#: Seconds a connection has for each request.
TIMEOUT = 5.0

Handler = Callable[[str, str], Reply]
#: Told (peer, why) of each refused request.
Refused = Callable[[str, str], None]


class _Refusal(Exception):
    """The request cannot be served: answer ``status`` with ``why`` and close."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


async def serve_http(
    handler: Handler,
    port: int,
    *,
    host: str = "127.0.0.1",
    refused: Refused | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``host:port`` until cancelled; ``task_status`` gets the listeners."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    busy = 0

    async def connection(stream: trio.SocketStream) -> None:
        nonlocal busy
        peer = _peer(stream)
        if busy >= MAX_CONNECTIONS:
            why = f"too many connections (this port serves {MAX_CONNECTIONS})"
            if refused is not None:
                refused(peer, why)
            await _close_with(stream, h11.Connection(h11.SERVER), 503, why)
            return
        busy += 1
        try:
            await _serve(stream, handler, peer, refused)
        finally:
            busy -= 1

    await trio.serve_listeners(connection, listeners, task_status=task_status)


async def _serve(
    stream: trio.SocketStream, handler: Handler, peer: str, refused: Refused | None
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    async with stream:
        while True:
            received = [0]  # bytes of this request so far
            try:
                with trio.fail_after(TIMEOUT):
                    request = await _request(conn, stream, received)
                if request is None:
                    return  # the client closed, between requests
                method = request.method.decode("ascii", "replace")
                reply = handler(method, request.target.decode("ascii", "replace"))
                await _send(stream, conn, reply, head_only=method == "HEAD")
            except trio.TooSlowError:
                if received[0] or conn.their_state is not h11.IDLE:  # half a request: say so
                    why = f"no whole request within {TIMEOUT:g} s"
                    if refused is not None:
                        refused(peer, why)
                    await _close_with(stream, conn, 408, why)
                return
            except _Refusal as exc:
                if refused is not None:
                    refused(peer, str(exc))
                await _close_with(stream, conn, exc.status, str(exc))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
                return  # the client went away mid-answer
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()


async def _request(
    conn: h11.Connection, stream: trio.SocketStream, received: list[int]
) -> h11.Request | None:
    """The next request, its body (if any) read and dropped; None on a clean close."""
    request: h11.Request | None = None
    body = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _Refusal(exc.error_status_hint, f"malformed request: {exc}") from None
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(4096)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            received[0] += len(data)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            if request is not None:
                raise _Refusal(400, "the connection ended inside a request")
            return None
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += len(event.data)
            if body > MAX_HEAD:
                raise _Refusal(413, f"a request body of more than {MAX_HEAD} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request


async def _send(
    stream: trio.SocketStream, conn: h11.Connection, reply: Reply, *, head_only: bool
) -> None:
    headers = [
        ("content-type", reply.content_type),
        ("content-length", str(len(reply.body))),
        ("cache-control", "no-store"),
    ]
    data = conn.send(h11.Response(status_code=reply.status, headers=headers))
    if not head_only:
        data = (data or b"") + (conn.send(h11.Data(data=reply.body)) or b"")
    data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(data)


async def _close_with(
    stream: trio.SocketStream, conn: h11.Connection, status: int, why: str
) -> None:
    """Answer ``status`` (when an answer can still be sent) and close."""
    body = (why.replace("\n", " ") + "\n").encode()
    try:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            headers = [
                ("content-type", "text/plain; charset=utf-8"),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ]
            out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
            out += conn.send(h11.Data(data=body)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
            with trio.move_on_after(1.0):
                await stream.send_all(out)
                # Read what the client still sends before closing, bounded: a close
                # with unread bytes is a reset, and the reset loses the answer.
                await stream.send_eof()
                drained = 0
                while drained < 16 * MAX_HEAD and (chunk := await stream.receive_some(4096)):
                    drained += len(chunk)
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
