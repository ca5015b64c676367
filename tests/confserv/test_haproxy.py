"""A real HAProxy in front of the pair, routing by the servers' HTTP health check.

HAProxy (Debian's package, installed by the test when missing, as the other
test programs are; skipped only where it cannot be had, failing under CI) runs
in TCP mode with ``option httpchk GET /primary`` against each member's
``http-port`` (``inter 200ms fall 2 rise 1``, tests/helpers/haproxy.py). A
client connecting to HAProxy reaches the primary (a write succeeds: a backup
refuses writes); after a SIGKILL of the primary, new connections reach the new
primary. How soon is measured by bench/bench_haproxy.py, not here.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from ..helpers.haproxy import first_write_through, haproxy_or_skip, running_haproxy, write_through
from ..helpers.system import MEMBERS, System, free_port, healthy, primary_of


async def test_haproxy_routes_new_connections_to_the_primary_across_a_failover(
    tmp_path: Path,
) -> None:
    binary = haproxy_or_skip()
    http = {s: free_port() for s in MEMBERS}
    system = System(
        tmp_path, server_lines={s: f"http-port = {http[s]}\n" for s in MEMBERS}, proxy=False
    )
    front = free_port()
    members = {s: (system.ports[s], http[s]) for s in MEMBERS}
    system.start()
    try:
        async with running_haproxy(binary, tmp_path, front, members):
            rows = await system.wait(healthy, timeout=60)
            await first_write_through(front, "before")  # HAProxy's first checks
            for n in range(10):  # every new connection reaches the primary
                assert await write_through(front, f"steady{n}")
            old = primary_of(rows)
            new = next(s for s in MEMBERS if s != old)
            os.kill(int(rows[old]["pid"]), signal.SIGKILL)
            killed = trio.current_time()
            await system.wait(lambda r: r[new]["role"] == "primary")
            routed = await first_write_through(front, "after") - killed
            for n in range(10):
                assert await write_through(front, f"settled{n}")
            print(f"HAProxy routes to the new primary {routed * 1000:.0f} ms after the kill")
    finally:
        system.stop()
