"""Change fan-out: each subscriber's filter and bounded queue, and notifications encoded once.

:class:`~confserv.core.service.ConfigService` publishes every applied change to its
:class:`Subscription` objects; a client session writes each wanted change
straight into its socket (``deliver``), a replication stream reads the queue.
Whether a subscriber that reads too little is cut off is decided by its
:class:`~confserv.core.backlog.Backlog`.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from addp import FrameKind, encode_frame, encode_payload
from confserv.model.objects import STORED_SECRET, public_view
from confserv.store.base import Change

from .backlog import Backlog

#: Changes buffered per subscriber before it is cut off as too slow.
SUBSCRIBER_BUFFER = 10_000
#: Bytes of changes buffered per subscriber before it is cut off as too slow.
SUBSCRIBER_BYTES = 16 * 1024 * 1024

Key = tuple[str, int]

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscription:
    """One subscriber's filter and its bounded queue of changes.

    ``deliver``, when set, takes each wanted change at once, in the publisher's
    task, instead of the queue (a client session writes it straight to its
    socket); it returns False when the subscriber must be dropped.
    """

    types: set[str] = field(default_factory=set)
    objects: set[Key] = field(default_factory=set)
    everything: bool = False
    overflowed: bool = False
    deliver: Callable[[Outgoing], bool] | None = None

    def __post_init__(self) -> None:
        self.backlog = Backlog(SUBSCRIBER_BUFFER, SUBSCRIBER_BYTES)
        # Unbounded: the backlog, not the channel, decides when the reader is too slow.
        self.send, self.receive = trio.open_memory_channel[Change](math.inf)
        #: Sizes of the changes in the queue, oldest first, and their sum.
        self._sizes: collections.deque[int] = collections.deque()
        self._queued_bytes = 0

    def offer(self, out: Outgoing) -> bool:
        """Hand ``out`` over (``deliver``) or queue its change for the reader. False:
        drop this subscriber (cut off as too slow, ``overflowed`` set; or its reader is
        gone). One subscriber's failure never fails the publisher (the write path). The
        size of the change's encoding counts against the queue's byte limit
        (:data:`SUBSCRIBER_BYTES`)."""
        if self.deliver is not None:
            try:
                return self.deliver(out)
            except Exception:
                _log.exception("delivering serial %s to a subscriber failed", out.change.serial)
                return False
        change = out.change
        unread = self.send.statistics().current_buffer_used
        while len(self._sizes) > unread:  # the reader took these, oldest first
            self._queued_bytes -= self._sizes.popleft()
        self.backlog.unread(unread, self._queued_bytes)
        size = len(out.data)
        if not self.backlog.queued(size):
            self.overflowed = True
            return False
        try:
            self.send.send_nowait(change)
        except trio.BrokenResourceError:
            return False
        self._sizes.append(size)
        self._queued_bytes += size
        return True

    def wants(self, change: Change) -> bool:
        """Whether this subscriber asked for ``change``."""
        return (
            self.everything
            or change.type in self.types
            or (change.type, change.dbid) in self.objects
        )


@dataclass(slots=True, eq=False)
class Outgoing:
    """One change on its way to every subscriber, prepared once per publish.

    ``data`` and ``frame`` are its client notification (msgpack, and the whole
    ADDP MESSAGE frame a session writes straight to its socket). ``verdicts``
    holds, by Person dbid, whether that Person may see the change: the first
    session of a Person decides it, the others of the same Person reuse it. That
    is sound for one publish only (memory does not change while it runs), so an
    Outgoing is never kept beyond the publish that made it. ``now`` is the
    publisher's clock, read by the first session that writes.
    """

    change: Change
    data: bytes
    frame: bytes
    verdicts: dict[int, bool] = field(default_factory=dict)
    now: float | None = None


class NotificationCache:
    """The encoded ``{"notify": ...}`` message of recent changes, built once per change.

    With a thousand subscribers a change is encoded once, not a thousand times.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: collections.OrderedDict[int, tuple[bytes, bytes]] = collections.OrderedDict()

    def outgoing(self, change: Change) -> Outgoing:
        """``change`` prepared for one publish to every subscriber (a new
        :class:`Outgoing` each call: its verdicts are that publish's only)."""
        return Outgoing(change, *self.framed(change))

    def framed(self, change: Change) -> tuple[bytes, bytes]:
        """The notification's msgpack bytes and its whole ADDP MESSAGE frame (what a
        session writes straight to a socket)."""
        item = self._items.get(change.serial)
        if item is None:
            data = encode_payload({"notify": public_change(change)})
            item = (data, encode_frame(FrameKind.MESSAGE, data))
            self._items[change.serial] = item
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return item


def public_change(change: Change) -> dict[str, Any]:
    """A change as a notification to clients: secrets removed."""
    wire = change.to_wire()
    data = dict(change.data)
    if change.op == "add":
        data = public_view(data)
    elif change.op == "change":
        data = {
            **data,
            "delta": {k: v for k, v in data.get("delta", {}).items() if k != STORED_SECRET},
        }
    wire["data"] = data
    return wire
