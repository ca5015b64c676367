"""HAProxy in front of a pair, routing by the servers' ``GET /primary`` (tests, benchmarks).

TCP mode, ``option httpchk GET /primary`` on each member's ``http-port``,
``inter 200ms fall 2 rise 1``; a refused connection is retried at once on the
other server (``option redispatch``, ``retries 1``), not three times on the
dead one a second apart (HAProxy's default).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import trio

from confserv.client.session import open_client
from confserv.wire.errors import ConfServError

from .debian import ProgramUnavailable, ensure_program
from .system import PASSWORD


def haproxy_or_skip() -> str:
    """HAProxy's path (installed when missing, as root); the test is skipped where it
    cannot be had, and fails under CI."""
    try:
        return ensure_program("haproxy")
    except ProgramUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def haproxy_cfg(front: int, members: Mapping[str, tuple[int, int]]) -> str:
    """The configuration: ``front`` on 127.0.0.1, each member (client port, http port)."""
    servers = "".join(
        f"    server {name} 127.0.0.1:{port} check port {http} inter 200ms fall 2 rise 1\n"
        for name, (port, http) in members.items()
    )
    return (
        "global\n    maxconn 256\n"
        "defaults\n    mode tcp\n    timeout connect 500ms\n    timeout client 30s\n"
        "    timeout server 30s\n    timeout check 500ms\n    retries 1\n"
        "    option redispatch 1\n"
        f"frontend pair\n    bind 127.0.0.1:{front}\n    default_backend members\n"
        "backend members\n    option httpchk GET /primary\n    http-check expect status 200\n"
        f"{servers}"
    )


@contextlib.asynccontextmanager
async def running_haproxy(
    binary: str, tmp: Path, front: int, members: Mapping[str, tuple[int, int]]
) -> AsyncIterator[None]:
    """HAProxy for the block (its log in ``tmp/haproxy.log``), stopped at the end."""
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_cfg(front, members))
    with (tmp / "haproxy.log").open("wb") as log:
        proxy = await trio.lowlevel.open_process(
            [binary, "-db", "-f", str(cfg)], stdout=log, stderr=log
        )
        try:
            yield
        finally:
            proxy.terminate()
            with trio.move_on_after(10):
                await proxy.wait()
            if proxy.returncode is None:
                proxy.kill()


async def write_through(front: int, name: str) -> bool:
    """One new connection through HAProxy: whether a write there succeeded (a backup
    refuses writes, so a success means the primary was reached)."""
    try:
        with trio.fail_after(5):
            async with open_client(
                [("127.0.0.1", front)], app="ha", user="default", password=PASSWORD
            ) as c:
                await c.create("DN", {"name": name})
                return True
    except (OSError, ConfServError, trio.TooSlowError):
        return False


async def first_write_through(front: int, prefix: str, timeout: float = 30.0) -> float:
    """Try new connections through HAProxy until a write succeeds; when it did."""
    with trio.fail_after(timeout):
        n = 0
        while not await write_through(front, f"{prefix}{n}"):
            n += 1
            await trio.sleep(0.02)
    return trio.current_time()
