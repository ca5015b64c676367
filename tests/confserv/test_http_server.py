"""The health and metrics port's HTTP glue (confserv/http/server.py) on loopback sockets.

Good requests are answered and kept alive; every kind of bad request gets one
answer naming what was wrong, one ``refused`` line, and only its connection
closed: the port goes on serving.
"""

from __future__ import annotations

import pytest
import trio

from confserv.http import server
from confserv.http.probe import Reply
from confserv.http.server import serve_http

from ..helpers.http import http_get, raw_exchange


def handler(method: str, target: str) -> Reply:
    return Reply(200 if target == "/ok" else 404, "text/plain", f"{method} {target}\n".encode())


async def start(nursery: trio.Nursery, refused: list[tuple[str, str]]) -> int:
    listeners = await nursery.start(
        lambda task_status: serve_http(
            handler, 0, refused=lambda p, w: refused.append((p, w)), task_status=task_status
        )
    )
    return int(listeners[0].socket.getsockname()[1])


async def test_requests_are_answered_and_kept_alive(nursery: trio.Nursery) -> None:
    refused: list[tuple[str, str]] = []
    port = await start(nursery, refused)
    assert await http_get(port, "/ok") == (200, b"GET /ok\n")
    assert (await http_get(port, "/nope"))[0] == 404
    two = (
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    out = await raw_exchange(port, two)
    assert out.count(b"HTTP/1.1 200") == 2  # one connection, two answers
    assert refused == []


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", b"400", "malformed request"),
        (b"GET /ok HTTP/1.1\r\n\r\n", b"400", "malformed request"),  # no Host
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431", "malformed"),
        (
            b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n" + b"a" * 20000,
            b"413",
            "body of more than",
        ),
    ],
)
async def test_a_bad_request_gets_one_answer_and_one_line(
    nursery: trio.Nursery, data: bytes, status: bytes, says: str
) -> None:
    refused: list[tuple[str, str]] = []
    port = await start(nursery, refused)
    out = await raw_exchange(port, data)
    assert out.startswith(b"HTTP/1.1 " + status), out[:80]
    assert len(refused) == 1
    assert says in refused[0][1]
    assert "\n" not in refused[0][1]
    assert await http_get(port, "/ok") == (200, b"GET /ok\n")  # the port goes on


async def test_half_a_request_is_timed_out_and_an_idle_connection_closed(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "TIMEOUT", 0.2)
    refused: list[tuple[str, str]] = []
    port = await start(nursery, refused)
    out = await raw_exchange(port, b"GET /ok HTTP/1.1\r\nHo")
    assert out.startswith(b"HTTP/1.1 408")
    assert await raw_exchange(port, b"") == b""  # idle: closed without a word
    assert [why for _, why in refused] == ["no whole request within 0.2 s"]


async def test_connections_past_the_cap_get_one_503(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 2)
    refused: list[tuple[str, str]] = []
    port = await start(nursery, refused)
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
    await trio.sleep(0.1)
    out = await raw_exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503")
    for stream in held:
        await stream.aclose()
    with trio.fail_after(10):
        while (await http_get(port, "/ok"))[0] != 200:
            await trio.sleep(0.05)
    assert "too many connections" in refused[0][1]
