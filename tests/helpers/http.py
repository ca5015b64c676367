"""A small HTTP/1.1 client for the tests (h11 over a trio socket)."""

from __future__ import annotations

import h11
import trio


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """``GET path`` on ``host:port``: the status and the body (TooSlowError after 10 s)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            request = h11.Request(
                method="GET", target=path, headers=[("host", host), ("connection", "close")]
            )
            await stream.send_all(
                (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            status, body = 0, b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, body


async def raw_exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``data`` as is and read until the server closes (10 s at most)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(data)
            out = b""
            while chunk := await stream.receive_some(65536):
                out += chunk
            return out
