"""A separate process that serves ADDP links and echoes every message.

Run as ``python addp_echo_peer.py [addp-timeout]``; prints ``PORT <n>`` on
stdout once listening. Used by the SIGSTOP tests and benchmarks, which need a
peer in another process that can be stopped with a signal.
"""

from __future__ import annotations

import sys

import trio

from addp import AddpOptions, LinkEnded
from addp.transport import Link, serve


async def echo(link: Link) -> None:
    try:
        async for msg in link:
            await link.send(msg)
    except LinkEnded:
        pass


async def main(timeout: float) -> None:
    opts = AddpOptions.addp(timeout) if timeout > 0 else AddpOptions()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, echo, 0, opts)
        print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
