"""The clients of a multi-host run: a writer to the pair and a reader through the proxy.

Run inside the bed's client host (its own network namespace), as a process::

    python -m tests.multihost.workload OUT STOP A:PORT,B:PORT PROXY:PORT

It records every request as one JSON line in OUT (``client``, ``op``,
``start``, ``end``, ``outcome``, ``serial``, ``epoch``, ``server``, ``key``;
times are ``time.time()``, the clock the test's faults use too) until the
file STOP exists, and at most :data:`LIMIT` seconds. The writer creates DNs
through the resilient client library (``w``); the reader reads the proxy's
status (``r``), whose serial must never go back. A request with no answer
within :data:`REQUEST_DEADLINE` is recorded ``hung``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import trio

from addp import LinkEnded
from confserv.client.resilient import open_resilient_client
from confserv.client.session import open_client
from confserv.wire.errors import ConfServError, ConnectionLostError, RequestError
from tests.helpers.system import PASSWORD

#: Seconds a request may go unanswered before it is recorded as hung.
REQUEST_DEADLINE = 30.0
#: The workload stops by itself after this many seconds.
LIMIT = 600.0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Recorder:
    """Writes each request as a JSON line, flushed at once (the test reads it live)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def add(self, **fields: Any) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()


async def writer(rec: Recorder, pair: list[tuple[str, int]], stop: trio.Event) -> None:
    """DNs created one after another through the resilient client."""
    async with open_resilient_client(
        pair, app="mh-w", user="default", password=PASSWORD, reconnect_timeout=0.02
    ) as rc:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"w{time.time_ns()}-{n}"
            start = time.time()
            try:
                with trio.fail_after(REQUEST_DEADLINE):
                    answer = await rc.create("DN", {"name": key})
            except trio.TooSlowError:
                rec.add(
                    client="w", op="write", start=start, end=time.time(), outcome="hung", key=key
                )
                continue
            except (ConnectionLostError, RequestError) as exc:
                outcome = "unknown" if isinstance(exc, ConnectionLostError) else "error"
                rec.add(
                    client="w", op="write", start=start, end=time.time(), outcome=outcome, key=key
                )
                await trio.sleep(0.01)
                continue
            server = f"{rc.address[0]}:{rc.address[1]}" if rc.address else None
            rec.add(
                client="w",
                op="write",
                start=start,
                end=time.time(),
                outcome="ok",
                serial=answer["serial"],
                epoch=answer["epoch"],
                server=server,
                key=key,
            )
            await trio.sleep(0.005)


async def reader(rec: Recorder, proxy: tuple[str, int], stop: trio.Event) -> None:
    """The proxy's status, again and again, on a connection made again after any failure."""
    while not stop.is_set():
        try:
            async with open_client(
                [proxy], app="mh-r", user="default", password=PASSWORD, connect_timeout=2
            ) as c:
                while not stop.is_set():
                    start = time.time()
                    with trio.move_on_after(REQUEST_DEADLINE) as scope:
                        status = await c.status()
                    if scope.cancelled_caught:
                        rec.add(client="r", op="read", start=start, end=time.time(), outcome="hung")
                        break
                    rec.add(
                        client="r",
                        op="read",
                        start=start,
                        end=time.time(),
                        outcome="ok",
                        serial=status["serial"],
                        epoch=status.get("epoch"),
                    )
                    await trio.sleep(0.05)
        except (OSError, ConfServError, LinkEnded, trio.TooSlowError):
            await trio.sleep(0.1)


async def main(
    out: Path, stop_file: Path, pair: list[tuple[str, int]], proxy: tuple[str, int]
) -> None:
    """Run both clients until ``stop_file`` exists (or :data:`LIMIT` s)."""
    with out.open("a", encoding="utf-8") as f, trio.CancelScope() as scope:
        rec = Recorder(f)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, rec, pair, stop)
            nursery.start_soon(reader, rec, proxy, stop)
            with trio.move_on_after(LIMIT):
                while not stop_file.exists():  # noqa: ASYNC240 (a stat, every 50 ms)
                    await trio.sleep(0.05)
            stop.set()
            # the clients finish the requests in flight, within their deadline
            scope.deadline = trio.current_time() + REQUEST_DEADLINE + 5


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 4:
        print("usage: python -m tests.multihost.workload OUT STOP A:P,B:P PROXY:P", file=sys.stderr)
        sys.exit(2)
    trio.run(
        main,
        Path(args[0]),
        Path(args[1]),
        [_address(a) for a in args[2].split(",")],
        _address(args[3]),
    )
