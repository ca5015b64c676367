"""A real HAProxy in front of the pair, routing by the servers' HTTP health check.

HAProxy (Debian's package, installed by the test when missing, as the other
test programs are; skipped only where it cannot be had, failing under CI) runs
in TCP mode with ``option httpchk GET /primary`` against each member's
``http-port`` (``inter 200ms fall 2 rise 1``). A client connecting to HAProxy
reaches the primary (a write succeeds: a backup refuses writes); after a
SIGKILL of the primary, new connections reach the new primary. How soon is
measured by bench/bench_haproxy.py, not here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import trio

from confserv.client.session import open_client
from confserv.wire.errors import ConfServError

from ..helpers.debian import ProgramUnavailable, ensure_program
from ..helpers.system import MEMBERS, PASSWORD, System, free_port, healthy, primary_of


def haproxy_or_skip() -> str:
    try:
        return ensure_program("haproxy")
    except ProgramUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def haproxy_cfg(front: int, system: System, http: dict[str, int]) -> str:
    servers = "".join(
        f"    server {s} 127.0.0.1:{system.ports[s]} check port {http[s]} "
        "inter 200ms fall 2 rise 1\n"
        for s in MEMBERS
    )
    return (
        "global\n    maxconn 256\n"
        # a refused connection is retried at once on another server (redispatch), not
        # three times on the dead one a second apart (HAProxy's default)
        "defaults\n    mode tcp\n    timeout connect 500ms\n    timeout client 30s\n"
        "    timeout server 30s\n    timeout check 500ms\n    retries 1\n"
        "    option redispatch 1\n"
        f"frontend pair\n    bind 127.0.0.1:{front}\n    default_backend members\n"
        "backend members\n    option httpchk GET /primary\n    http-check expect status 200\n"
        f"{servers}"
    )


async def write_through(front: int, name: str) -> bool:
    """One new connection through HAProxy: whether a write there succeeded."""
    try:
        with trio.fail_after(5):
            async with open_client(
                [("127.0.0.1", front)], app="ha", user="default", password=PASSWORD
            ) as c:
                await c.create("DN", {"name": name})
                return True
    except (OSError, ConfServError, trio.TooSlowError):
        return False


async def test_haproxy_routes_new_connections_to_the_primary_across_a_failover(
    tmp_path: Path,
) -> None:
    binary = haproxy_or_skip()
    http = {s: free_port() for s in MEMBERS}
    system = System(
        tmp_path, server_lines={s: f"http-port = {http[s]}\n" for s in MEMBERS}, proxy=False
    )
    front = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_cfg(front, system, http))
    log = (tmp_path / "haproxy.log").open("wb")
    proxy = await trio.lowlevel.open_process(
        [binary, "-db", "-f", str(cfg)], stdout=log, stderr=log
    )
    system.start()
    try:
        rows = await system.wait(healthy, timeout=60)
        with trio.fail_after(30):  # HAProxy's first checks: only the primary is up
            n = 0
            while not await write_through(front, f"before{n}"):
                n += 1
                await trio.sleep(0.1)
        for n in range(10):  # every new connection reaches the primary
            assert await write_through(front, f"steady{n}")
        old = primary_of(rows)
        os.kill(int(rows[old]["pid"]), signal.SIGKILL)
        killed = time.monotonic()
        await system.wait(lambda r: r[next(s for s in MEMBERS if s != old)]["role"] == "primary")
        with trio.fail_after(30):
            n = 0
            while not await write_through(front, f"after{n}"):
                n += 1
                await trio.sleep(0.02)
        routed = time.monotonic() - killed
        for n in range(10):
            assert await write_through(front, f"settled{n}")
        print(f"HAProxy routes to the new primary {routed * 1000:.0f} ms after the kill")
    finally:
        proxy.terminate()
        with trio.move_on_after(10):
            await proxy.wait()
        if proxy.returncode is None:
            proxy.kill()
        log.close()
        system.stop()
