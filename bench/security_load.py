"""The attackers of ``bench/bench_security.py``, in a process of their own.

``python -m bench.security_load --seconds S [--retry R] [--source HOST] [--hold N ADDR]...
[--flood N ADDR]... [--registered N ADDR PASSWORD]`` opens the crowds and floods (every
connection from ``--source`` when given: ``127.0.0.2`` stands for another host),
runs until ``S`` seconds have passed or it gets SIGTERM, and prints what it did as
one JSON line (``counts``, ``open_max``). A separate process keeps the attackers'
event loop out of the good client's timings: 3,000 connections churning in the
benchmark's own loop delayed its good client by up to half a second.

``--hold N ADDR``: N connections that send a HELLO and nothing more, reconnecting
``--retry`` seconds after the server closes them. ``--flood N ADDR``: N connections
sending a HELLO then 4 MiB MESSAGE frames back to back, reconnecting when refused.
``--registered N ADDR PASSWORD``: N client connections that register as ``default``
and then send 4 MiB unknown-op requests without reading the answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from tests.fuzz.frames import GOOD_HELLO, message_frame

MiB = 1 << 20
BIG_OP = message_frame({"op": "o" * (4 * MiB - 100), "id": 2})
_RETRY = 0.2


@dataclass
class Load:
    """Connections a crowd or flood made, and what became of them."""

    counts: Counter[str] = field(default_factory=Counter)
    open_now: int = 0
    open_max: int = 0


async def hold(
    address: tuple[str, int], retry: float, load: Load, stop: trio.Event, source: str | None
) -> None:
    """One member of a crowd: connect (from ``source``, None: the kernel's choice), send
    a HELLO, read until closed; again."""
    while not stop.is_set():
        try:
            stream = await trio.open_tcp_stream(*address, local_address=source)
        except OSError:
            load.counts["connect failed"] += 1
            await trio.sleep(retry)
            continue
        load.counts["opened"] += 1
        load.open_now += 1
        load.open_max = max(load.open_max, load.open_now)
        try:
            async with stream:
                with trio.move_on_after(60):
                    await stream.send_all(GOOD_HELLO)
                    while not stop.is_set() and await stream.receive_some(65536):
                        pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        load.open_now -= 1
        await trio.sleep(retry)


async def flood(address: tuple[str, int], load: Load, stop: trio.Event, source: str | None) -> None:
    """Unauthenticated: HELLO, then 4 MiB frames until refused; again."""
    while not stop.is_set():
        try:
            stream = await trio.open_tcp_stream(*address, local_address=source)
        except OSError:
            await trio.sleep(_RETRY)
            continue
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_all(GOOD_HELLO)
                with trio.move_on_after(5):
                    while not stop.is_set():
                        load.counts["4 MiB frames offered unauthenticated"] += 1
                        await stream.send_all(BIG_OP)
        await trio.sleep(_RETRY)


async def registered_flood(
    address: tuple[str, int], password: str, load: Load, stop: trio.Event, source: str | None
) -> None:
    """Registered: 4 MiB unknown-op requests, never reading an answer."""
    register = message_frame(
        {"op": "register", "id": 1, "app": "flood", "user": "default", "password": password}
    )
    while not stop.is_set():
        stream = await trio.open_tcp_stream(*address, local_address=source)
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_all(GOOD_HELLO + register)
                await trio.sleep(0.5)  # frames over 64 KiB wait for the answer to register
                with trio.move_on_after(10):
                    while not stop.is_set():
                        await stream.send_all(BIG_OP)
                        load.counts["4 MiB frames sent registered"] += 1
        await trio.sleep(_RETRY)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def run(args: argparse.Namespace) -> Load:
    """Every crowd and flood of ``args`` until the time is up or SIGTERM."""
    load, stop = Load(), trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def until_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(until_signal)
            for n, address in args.hold:
                for _ in range(int(n)):
                    nursery.start_soon(hold, _address(address), args.retry, load, stop, args.source)
            for n, address in args.flood:
                for _ in range(int(n)):
                    nursery.start_soon(flood, _address(address), load, stop, args.source)
            for n, address, password in args.registered:
                for _ in range(int(n)):
                    nursery.start_soon(
                        registered_flood, _address(address), password, load, stop, args.source
                    )
            with trio.move_on_after(args.seconds):
                await stop.wait()
            stop.set()
            nursery.cancel_scope.deadline = trio.current_time() + 2
    return load


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.security_load")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--retry", type=float, default=1.0)
    parser.add_argument("--source", default=None, help="the local address to connect from")
    parser.add_argument("--hold", nargs=2, action="append", default=[], metavar=("N", "ADDR"))
    parser.add_argument("--flood", nargs=2, action="append", default=[], metavar=("N", "ADDR"))
    parser.add_argument(
        "--registered", nargs=3, action="append", default=[], metavar=("N", "ADDR", "PASSWORD")
    )
    args = parser.parse_args(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = trio.run(run, args)
    print(json.dumps({"counts": dict(load.counts), "open_max": load.open_max}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
