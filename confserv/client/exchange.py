"""Requests and answers over one link: :class:`Session`, below the client library.

A session correlates each request with its answers by request id, hands
notifications and pushes to the application through a bounded channel, and
turns an error answer into its :mod:`confserv.wire.errors` exception. It
routes every message from wherever the link read it (``Link.set_router``), so
an answer or a notification reaches the task waiting for it with no task
switch in between. :mod:`confserv.client.session` builds the client calls on it.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import trio

from addp import LinkClosedLocally, LinkEnded
from addp.transport import Link
from confserv.wire.errors import (
    ERRORS_BY_CODE,
    BackupModeError,
    ConnectionLostError,
    NotSentError,
    RequestError,
    StaleSupervisorError,
)

#: Notifications buffered for the caller before the client stops reading.
NOTIFY_BUFFER = 100_000


class _Answers:
    """The messages routed to one request (its chunks, then its final answer).

    A deque and an event: a memory channel per request cost the client library
    7 % of its CPU in a read loop, for a queue with one writer (the router) and
    one reader (the request) that never needs a bound.
    """

    __slots__ = ("_arrived", "_closed", "_messages")

    def __init__(self) -> None:
        self._messages: deque[dict[str, Any]] = deque()
        self._arrived = trio.Event()
        self._closed = False

    def put(self, msg: dict[str, Any]) -> None:
        """From the router: one message for this request."""
        self._messages.append(msg)
        self._arrived.set()

    def close(self) -> None:
        """The link ended: :meth:`get` returns None once the messages are taken."""
        self._closed = True
        self._arrived.set()

    async def get(self) -> dict[str, Any] | None:
        """The next message, or None once closed with none left."""
        while not self._messages:
            if self._closed:
                return None
            self._arrived = trio.Event()  # nothing is waiting in the old one
            await self._arrived.wait()
        return self._messages.popleft()


def _raise_for(answer: dict[str, Any]) -> None:
    if answer.get("ok"):
        return
    cls = ERRORS_BY_CODE.get(str(answer.get("code")), RequestError)
    message = str(answer.get("message", "request failed"))
    if cls is BackupModeError:
        raise BackupModeError(
            message, answer.get("primary"), primary_lost=answer.get("primary_lost") is True
        )
    if cls is StaleSupervisorError:
        newest = answer.get("supervisor_epoch")
        if not isinstance(newest, int) or isinstance(newest, bool):
            newest = -1
        raise StaleSupervisorError(message, newest=newest)
    exc = cls(message)
    if cls is RequestError:
        exc.code, exc.details = str(answer.get("code", RequestError.code)), answer
    raise exc


class Session:
    """Requests and answers over one link, correlated by request id."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._ids = itertools.count(1)
        self._pending: dict[int, _Answers] = {}
        self._notify_send, self._notify_recv = trio.open_memory_channel[dict[str, Any]](
            NOTIFY_BUFFER
        )
        self.pushes: list[dict[str, Any]] = []
        self.first: dict[str, Any] | None = None
        self._first_event = trio.Event()
        self.ended: LinkEnded | None = None
        self.closed = trio.Event()
        #: Why the application's notifications overflowed (the link is then closed).
        self._overflow: str | None = None
        self._watch = trio.CancelScope()

    async def run_reader(self) -> None:
        """Route every incoming message to its request, or to notifications, until the
        link ends.

        The routing itself runs where the message is read (:meth:`_route`, the
        link's router): a notification reaches the task waiting for it with no
        task switch in between. This task waits for the end and tidies up.
        """
        try:
            self.link.set_router(self._route)
            with trio.CancelScope() as self._watch:
                end = await self.link.wait_ended()
                if not isinstance(end, LinkClosedLocally):
                    self.ended = end
            if self._overflow is not None:
                await self.link.aclose(self._overflow)
        finally:
            for answers in self._pending.values():
                answers.close()
            self._notify_send.close()
            self._first_event.set()
            self.closed.set()

    def _route(self, msg: Any) -> None:
        """The link's router: an answer to its request, a notification or push to the
        application, the first unsolicited message to :meth:`first_message`."""
        if not isinstance(msg, dict) or self._overflow is not None:
            return
        if "re" in msg:
            answers = self._pending.get(msg["re"])
            if answers is not None:
                answers.put(msg)
        elif "notify" in msg or "push" in msg:
            try:
                self._notify_send.send_nowait(msg)
            except trio.WouldBlock:
                # Waiting here would stop every answer too: requests would hang.
                # End the link instead; the application restores later.
                self._overflow = f"{NOTIFY_BUFFER} notifications not read by the application"
                self.ended = LinkClosedLocally(self._overflow)
                self._watch.cancel()
        elif self.first is None:
            self.first = msg
            self._first_event.set()

    async def first_message(self) -> dict[str, Any] | None:
        """The first unsolicited message (the management challenge)."""
        await self._first_event.wait()
        return self.first

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and return its final answer (chunks merged under ``objects``)."""
        request_id = next(self._ids)
        answers = self._pending[request_id] = _Answers()
        objects: list[Any] = []
        try:
            if self.closed.is_set():
                # The reader is gone (the link ended, or its task was cancelled while
                # the link still took writes): no answer could ever be routed here.
                raise NotSentError(f"{op}: not sent, the connection is closed: {self.ended}")
            try:
                await self.link.send({"op": op, "id": request_id, **args})
            except LinkEnded as exc:
                raise NotSentError(f"{op}: not sent, the connection was lost: {exc}") from exc
            while (answer := await answers.get()) is not None:
                if "ok" not in answer:
                    objects.extend(answer.get("objects", ()))
                    continue
                _raise_for(answer)
                if objects:
                    answer["objects"] = objects + list(answer.get("objects", ()))
                return answer
            why = self.ended or "connection closed"
            # ``from`` the link's end: callers tell a close or a reset from a silence by it
            raise ConnectionLostError(f"{op}: connection lost before the answer: {why}") from (
                self.ended
            )
        finally:
            del self._pending[request_id]

    async def next_notification(self) -> dict[str, Any]:
        """The next notification or push; ConnectionLostError when the link ended."""
        try:
            return await self._notify_recv.receive()
        except trio.EndOfChannel:
            raise ConnectionLostError(f"connection lost: {self.ended}") from self.ended
