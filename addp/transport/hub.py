"""Idle links served by one task: keep-alive traffic without a task switch per link.

A link whose reader has nothing to do but wait (a plain TCP socket, no
authentication or frame deadline pending, room in its inbox, nothing queued
to write) *parks* with the :class:`Hub` of its trio run. The hub watches
every parked socket through one ``epoll`` object of its own (itself waited on
by trio, so the hub is one trio task) and serves the parked links' ADDP
deadlines from one heap: a POLL received is answered, a REPLY noted and a POLL
due sent right there, with no wake-up of the link's reader task. Anything
else (an application message, a CLOSE, the end of the stream, a protocol
error, a write that did not go through at once, a trace line, the peer lost)
*unparks* the reader with what happened, and the reader goes on exactly as if
it had read the bytes or served the deadline itself.

Deadlines are served on a grid of :data:`TICK` seconds, rounded up: a timer
fires up to one tick late, never early, so many links' timers share one
wake-up and the detection bound of ``docs/protocol.md`` (section 5.5) holds
with at most one tick of lateness. Without ``select.epoll`` (not Linux) no
link parks.
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


#: The grid on which parked links' deadlines are served, in seconds (1/64 s, exact
#: in binary): a deadline fires at the first grid point at or after it.
TICK = 1 / 64
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


def ceil_tick(deadline: float) -> float:
    """``deadline`` rounded up to the grid of :data:`TICK`."""
    return math.ceil(deadline / TICK) * TICK


class _Parked:
    """One parked link: its reader task, its socket's fd, and whether it is still parked."""

    __slots__ = ("fd", "link", "parked", "task", "tick")

    def __init__(self, link: Link, fd: int, task: trio.lowlevel.Task) -> None:
        self.link = link
        self.fd = fd
        self.task = task
        self.parked = True
        #: The grid point (in ticks) of its deadline's bucket, or None: no deadline.
        self.tick: int | None = None


class Hub:
    """The parked links of one trio run (see module docstring)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, _Parked] = {}
        #: Parked links by the grid point (in ticks) their deadline rounds up to, and
        #: those grid points in a heap (one may stay behind its emptied bucket).
        self._buckets: dict[int, dict[_Parked, None]] = {}
        self._ticks: list[int] = []
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
        """File ``entry`` under the grid point of its deadline (moving it if it moved):
        a link whose deadline keeps moving on (bytes keep coming) never wakes the hub."""
        deadline = entry.link.connection.next_deadline()
        tick = None if deadline is None else math.ceil(deadline / TICK)
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
        ticks, buckets = self._ticks, self._buckets
        while ticks and not buckets.get(ticks[0]):
            buckets.pop(heapq.heappop(ticks), None)  # emptied: its links moved on
        return ticks[0] * TICK if ticks else math.inf

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
                    self._due(entry, now)

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
        self._after(entry, events)

    def _due(self, entry: _Parked, now: float) -> None:
        conn = entry.link.connection
        deadline = conn.next_deadline()
        if deadline is None:
            return
        if deadline > now:
            self._schedule(entry)
            return
        if self._after(entry, conn.handle_timeout(now)):
            self._schedule(entry)  # the poll's answer is now due

    def _after(self, entry: _Parked, events: list[Any]) -> bool:
        """Keep ``entry`` parked (True), filed under its deadline as it now stands, if
        nothing needs its reader; else unpark it with ``events``."""
        link = entry.link
        conn = link.connection
        if (
            not events
            and not conn.closed
            and conn.guard.idle
            and (not conn.has_data_to_send or link._write_parked())
            and conn.pending_error is None
        ):
            self.served += 1
            self._schedule(entry)
            return True
        self._unpark(entry, outcome.Value(events))
        return False
