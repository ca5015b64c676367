"""Idle links served by one task: keep-alive traffic without a task switch per link.

A link whose reader has nothing to do but wait (a plain TCP socket, no
authentication or frame deadline pending, room in its inbox, nothing queued
to write) *parks* with the :class:`Hub` of its trio run. The hub watches
every parked socket through one ``epoll`` object of its own (itself waited on
by trio, so the hub is one trio task) and serves the parked links' ADDP
deadlines from one heap: a POLL received is answered, a REPLY noted and a POLL
due sent right there, with no wake-up of the link's reader task. Application
messages read for a parked link are handed over right there too (to the link's
router or its inbox, as the reader would), so a notification to an idle client
costs one read and no task switch before its consumer's. Anything else (a
CLOSE, the end of the stream, a protocol error, a write that did not go
through at once, a full inbox, messages coming closer together than
``BUSY_GAP``: a busy link, whose reader reads its socket itself, a trace
line, the peer lost) *unparks* the reader with what happened, and the
reader goes on exactly as if it had read the bytes or served the deadline
itself.

Polls are sent on a grid of :data:`TICK` seconds, at the grid point at or
before they are due (up to one tick early), so that many links' polls share
one wake-up; the answer to an early poll may take as much longer, and a loss
is served on time from a heap of exact deadlines, so the detection bound of
``docs/protocol.md`` (section 5.5) is kept as it is: never sooner than ``2T``
after the peer's last byte, and on time. Without ``select.epoll`` (not
Linux) no link parks.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import select
from typing import Any, Protocol

import outcome
import trio

from .._connection import Connection
from .._keepalive import KeepaliveState


class Link(Protocol):
    """What the hub uses of a :class:`~addp.transport.link.Link` (no import of it:
    the link imports the hub)."""

    _parked_fd: int | None

    @property
    def connection(self) -> Connection:
        """The sans-IO connection."""
        ...

    def _write_parked(self) -> bool:
        """Write what is queued without waiting; True if it all went."""
        ...

    def _hand_over_parked(self, events: list[Any], now: float) -> bool:
        """Dispatch ``events`` if they are all application messages; True if it did."""
        ...

    def _stays_parked(self) -> bool:
        """Whether the reader may stay parked after a hand-over (room, not busy)."""
        ...


#: The grid on which parked links' polls are sent, in seconds (1/32 s, exact in
#: binary): a poll goes at the last grid point at or before it is due.
TICK = 1 / 32
#: Links with a shorter ADDP timeout do not park (a poll a tick early would be a
#: large part of their interval): they keep serving their deadlines themselves.
MIN_TIMEOUT = 8 * TICK
#: Bytes read from a parked link's socket per readiness (a keep-alive frame is ~9).
READ_SIZE = 65536

_HUB: trio.lowlevel.RunVar[Hub | None] = trio.lowlevel.RunVar("addp_hub", default=None)


def available() -> bool:
    """Whether links may park here (the hub needs ``select.epoll``)."""
    return hasattr(select, "epoll")


def current_hub() -> Hub:
    """The hub of this trio run, started (as a system task) on first use."""
    hub = _HUB.get()
    if hub is None:
        hub = Hub()
        _HUB.set(hub)
        trio.lowlevel.spawn_system_task(hub.run, name="addp.transport.hub")
    return hub


def floor_tick(deadline: float) -> float:
    """The grid point of :data:`TICK` at or before ``deadline``: when a poll due then
    is sent (up to one tick early; the loss stays due ``2T`` after the last byte)."""
    return math.floor(deadline / TICK) * TICK


def _valid(item: tuple[float, int, _Parked]) -> bool:
    return item[2].parked and item[2].exact == item[0]


class _Parked:
    """One parked link: its reader task, its socket's fd, and whether it is still parked."""

    __slots__ = ("exact", "fd", "link", "parked", "task", "tick")

    def __init__(self, link: Link, fd: int, task: trio.lowlevel.Task) -> None:
        self.link = link
        self.fd = fd
        self.task = task
        self.parked = True
        #: The grid point (in ticks) of its poll's bucket, or None.
        self.tick: int | None = None
        #: Its loss deadline, filed in the exact heap, or None.
        self.exact: float | None = None


class Hub:
    """The parked links of one trio run (see module docstring)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, _Parked] = {}
        #: Parked links by the grid point (in ticks) their deadline rounds up to, and
        #: those grid points in a heap (one may stay behind its emptied bucket).
        self._buckets: dict[int, dict[_Parked, None]] = {}
        self._ticks: list[int] = []
        #: Loss deadlines (a poll unanswered), served on time: (deadline, order, entry).
        self._exact: list[tuple[float, int, _Parked]] = []
        self._order = 0
        self._sleep = trio.CancelScope()
        #: Link wake-ups avoided: keep-alive frames and deadlines served here.
        self.served = 0

    @property
    def parked(self) -> int:
        """How many links are parked now."""
        return len(self._by_fd)

    async def park(self, link: Link, fd: int) -> list[Any]:
        """Park ``link`` (its socket is ``fd``) until something needs its reader: returns
        the events of what the hub read or served for it (the connection has been fed),
        or raises what reading it raised."""
        if fd in self._by_fd:  # a stale entry: that socket was closed behind the hub's back
            self._unpark(self._by_fd[fd], outcome.Error(trio.ClosedResourceError("closed")))
        entry = _Parked(link, fd, trio.lowlevel.current_task())
        self._epoll.register(fd, select.EPOLLIN)
        self._by_fd[fd] = entry
        self._schedule(entry)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._drop(entry)
            return trio.lowlevel.Abort.SUCCEEDED

        events: list[Any] = await trio.lowlevel.wait_task_rescheduled(abort)
        return events

    def unpark(self, link: Link) -> None:
        """Wake ``link``'s reader if it is parked (its link ended: nothing to report)."""
        fd = link._parked_fd
        entry = self._by_fd.get(fd) if fd is not None else None
        if entry is not None and entry.link is link:
            self._unpark(entry, outcome.Value([]))

    def _schedule(self, entry: _Parked) -> None:
        """File ``entry`` by its deadline as it now stands: a poll due under the grid
        point at or before it (moved when the deadline moves: a link whose peer keeps
        polling never wakes the hub), a loss due in the exact heap."""
        conn = entry.link.connection
        deadline = conn.next_deadline()
        if deadline is not None and conn.keepalive.state is KeepaliveState.POLLING:
            self._unschedule(entry)
            if entry.exact != deadline:
                entry.exact = deadline
                self._order += 1
                heapq.heappush(self._exact, (deadline, self._order, entry))
                if deadline < self._sleep.deadline:
                    self._sleep.deadline = deadline
            return
        entry.exact = None
        tick = None if deadline is None else math.floor(deadline / TICK)
        if tick == entry.tick:
            return
        self._unschedule(entry)
        if tick is None:
            return
        entry.tick = tick
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            heapq.heappush(self._ticks, tick)
            when = tick * TICK
            if when < self._sleep.deadline:
                self._sleep.deadline = when
        bucket[entry] = None

    def _unschedule(self, entry: _Parked) -> None:
        if entry.tick is not None:
            bucket = self._buckets.get(entry.tick)
            if bucket is not None:
                bucket.pop(entry, None)
            entry.tick = None

    def _drop(self, entry: _Parked) -> None:
        if not entry.parked:
            return
        entry.parked = False
        self._unschedule(entry)
        if self._by_fd.get(entry.fd) is entry:
            del self._by_fd[entry.fd]
            # Closed already? Closing a socket removes it from every epoll.
            with contextlib.suppress(OSError):
                self._epoll.unregister(entry.fd)

    def _unpark(self, entry: _Parked, result: outcome.Outcome[list[Any]]) -> None:
        if entry.parked:
            self._drop(entry)
            trio.lowlevel.reschedule(entry.task, result)

    async def run(self) -> None:
        """Serve the parked links until the trio run ends."""
        try:
            epfd = self._epoll.fileno()
            while True:
                # One cancel scope serves wake-ups by readiness until a deadline ends it.
                self._sleep = trio.CancelScope(deadline=self._first())
                with self._sleep:
                    while True:
                        await trio.lowlevel.wait_readable(epfd)
                        self._serve(trio.current_time())
                        self._sleep.deadline = self._first()
                self._serve(trio.current_time())
        finally:
            self._epoll.close()

    def _first(self) -> float:
        ticks, buckets, exact = self._ticks, self._buckets, self._exact
        while ticks and not buckets.get(ticks[0]):
            buckets.pop(heapq.heappop(ticks), None)  # emptied: its links moved on
        while exact and not _valid(exact[0]):
            heapq.heappop(exact)  # answered meanwhile (or unparked)
        first = ticks[0] * TICK if ticks else math.inf
        return min(first, exact[0][0]) if exact else first

    def _serve(self, now: float) -> None:
        """Read every parked socket that is readable, then serve the deadlines due."""
        for fd, _mask in self._epoll.poll(0):
            entry = self._by_fd.get(fd)
            if entry is not None:
                self._readable(entry, now)
        ticks = self._ticks
        while ticks and ticks[0] * TICK <= now:
            bucket = self._buckets.pop(heapq.heappop(ticks), None)
            for entry in list(bucket or ()):
                entry.tick = None
                if entry.parked:
                    self._due(entry, now, TICK)
        exact = self._exact
        while exact and exact[0][0] <= now:
            item = heapq.heappop(exact)
            if _valid(item):
                item[2].exact = None
                self._due(item[2], now, 0.0)

    def _readable(self, entry: _Parked, now: float) -> None:
        link = entry.link
        try:
            data = os.read(entry.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._unpark(entry, outcome.Error(exc))
            return
        try:
            events = link.connection.receive_data(data, now)
        except Exception as exc:  # a protocol error: raised in the reader, as it would be
            self._unpark(entry, outcome.Error(exc))
            return
        self._after(entry, events, now)

    def _due(self, entry: _Parked, now: float, early: float) -> None:
        """``entry``'s deadline may be due (a poll up to ``early`` seconds ahead)."""
        conn = entry.link.connection
        deadline = conn.next_deadline()
        if deadline is None:
            return
        if deadline - early > now:
            self._schedule(entry)
            return
        self._after(entry, conn.handle_timeout(now, early=early), now)

    def _after(self, entry: _Parked, events: list[Any], now: float) -> bool:
        """Keep ``entry`` parked (True), filed under its deadline as it now stands, if
        nothing needs its reader; else unpark it with ``events``."""
        link = entry.link
        conn = link.connection
        if events:
            try:
                if link._hand_over_parked(events, now):
                    events = []  # delivered here: the reader stays parked unless busy
            except Exception as exc:  # the link's router failed: raised in the reader
                self._unpark(entry, outcome.Error(exc))
                return False
        if (
            not events
            and not conn.closed
            and conn.guard.idle
            and link._stays_parked()
            and (not conn.has_data_to_send or link._write_parked())
            and conn.pending_error is None
        ):
            self.served += 1
            self._schedule(entry)
            return True
        self._unpark(entry, outcome.Value(events))
        return False
