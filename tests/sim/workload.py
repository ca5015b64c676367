"""The clients of a simulated schedule, each a simulated process; every request is recorded.

- ``w`` writes through the resilient client library to the pair;
- ``p`` writes through the proxy and reads its own write back (read-your-writes);
- ``r`` reads through the proxy (its serial must never go back).

Each request becomes a :class:`tests.chaos.checker.Request` (start, end,
outcome, serial, epoch, the server that answered); a request unanswered
within :data:`REQUEST_DEADLINE` is ``hung``. The last read (:func:`final_read`)
is of everything the primary serves once the system has healed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from addp import LinkEnded
from confserv.client.resilient import open_resilient_client
from confserv.client.session import open_client
from confserv.wire.errors import ConfServError, ConnectionLostError, RequestError

from ..chaos.checker import Record, Request
from .process import SimProcess
from .system import CLIENT_PORT, PAIR, PASSWORD, PROXY, USER, host_of

#: A request unanswered this long (virtual seconds) is a liveness violation.
REQUEST_DEADLINE = 30.0
#: Seconds between one client's requests.
GAPS = {"w": 0.25, "p": 0.5, "r": 0.5}
#: The pair as clients reach it.
PAIR_ADDRESSES = [(host_of(s), CLIENT_PORT) for s in PAIR]
_SECTION_OF = {host_of(s): s for s in PAIR}


class Workload:
    """The three clients (see module docstring) writing into ``record``."""

    def __init__(self, record: Record, prefix: str) -> None:
        self.record = record
        self.prefix = prefix
        self.stop = trio.Event()
        #: When the latest acknowledged write was sent.
        self.last_write_start = -1.0
        #: Read-your-writes failures: (key, serial) written through the proxy but not read back.
        self.unread: list[str] = []

    def _request(self, client: str, op: str, start: float, outcome: str, **kw: Any) -> None:
        self.record.requests.append(Request(client, op, start, trio.current_time(), outcome, **kw))
        if op == "write" and outcome == "ok":
            self.last_write_start = max(self.last_write_start, start)

    async def _timed(
        self, client: str, op: str, call: Callable[[], Awaitable[Any]], key: str | None = None
    ) -> Any:
        """One recorded request; its answer, or None when it failed (recorded as such)."""
        start = trio.current_time()
        with trio.move_on_after(REQUEST_DEADLINE) as scope:
            try:
                return await call()
            except ConnectionLostError:
                self._request(client, op, start, "unknown", key=key)
                raise
            except RequestError:
                self._request(client, op, start, "error", key=key)
                return None
        if scope.cancelled_caught:
            self._request(client, op, start, "hung", key=key)
            raise trio.TooSlowError
        return None

    async def writer(self, proc: SimProcess) -> int:
        """``w``: creates through the resilient client, to whichever master serves."""
        async with open_resilient_client(
            PAIR_ADDRESSES, app="sim-w", user=USER, password=PASSWORD, reconnect_timeout=0.02
        ) as rc:
            n = 0
            while not self.stop.is_set():
                n += 1
                key = f"{self.prefix}w{n}"
                start = trio.current_time()
                try:
                    answer = await self._timed(
                        "w", "write", lambda k=key: rc.create("DN", {"name": k}), key
                    )
                except (ConnectionLostError, trio.TooSlowError):
                    continue
                if answer is not None:
                    where = rc.address
                    self._request(
                        "w",
                        "write",
                        start,
                        "ok",
                        serial=answer["serial"],
                        epoch=answer["epoch"],
                        server=_SECTION_OF.get(where[0]) if where else None,
                        key=key,
                    )
                await trio.sleep(GAPS["w"])
        return 0

    async def through_proxy(self, proc: SimProcess) -> int:
        """``p`` (writes, then reads its write back) or ``r`` (reads the serial)."""
        name = proc.name
        n = 0
        while not self.stop.is_set():
            try:
                async with open_client(
                    [(host_of(PROXY), CLIENT_PORT)],
                    app=f"sim-{name}",
                    user=USER,
                    password=PASSWORD,
                    connect_timeout=2,
                ) as c:
                    while not self.stop.is_set():
                        if name == "p":
                            n += 1
                            await self._write_and_read(c, f"{self.prefix}p{n}")
                        start = trio.current_time()
                        status = await self._timed(name, "read", c.status)
                        if status is not None:
                            self._request(
                                name,
                                "read",
                                start,
                                "ok",
                                serial=status["serial"],
                                epoch=status.get("epoch"),
                            )
                        await trio.sleep(GAPS[name])
            except (OSError, ConfServError, LinkEnded, trio.TooSlowError):
                await trio.sleep(0.1)
        return 0

    async def _write_and_read(self, c: Any, key: str) -> None:
        start = trio.current_time()
        answer = await self._timed("p", "write", lambda: c.create("DN", {"name": key}), key)
        if answer is None:
            return
        self._request(
            "p", "write", start, "ok", serial=answer["serial"], epoch=answer["epoch"], key=key
        )
        found = await self._timed("p", "read-own", lambda: c.read("DN", {"name": key}))
        if found is not None and not found:
            self.unread.append(f"{key} (serial {answer['serial']})")


async def final_read(deadline: float = 10.0) -> list[str] | str:
    """The names of every DN the pair's primary serves, or why they could not be read."""
    try:
        with trio.fail_after(deadline):
            async with open_resilient_client(
                PAIR_ADDRESSES,
                app="sim-final",
                user=USER,
                password=PASSWORD,
                reconnect_timeout=0.05,
            ) as rc:
                return [str(o["name"]) for o in await rc.read("DN")]
    except (trio.TooSlowError, ConfServError, OSError, LinkEnded) as exc:
        return f"the final read of the primary failed: {exc!r}"
