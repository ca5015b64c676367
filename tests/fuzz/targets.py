"""The three ports under fuzz, and how a case is sent to one and its outcome read.

A fresh-connection case (:func:`send_case`) connects, sends our HELLO (unless
the case replaces it) and the case's bytes, then half-closes: the server
reads everything, answers what it answers, and closes (EOF is the end of
the case; a server that neither closes nor answers within
:data:`CASE_TIMEOUT` is a hang). A :class:`Session` is an authenticated
connection (registered on the client port; authenticated with the secret, which
the fuzzer knows, on the management and control ports) that takes many cases: batches of requests
written at once, each answered exactly once (the order rule of
docs/protocol.md 10.2), polls answered; when the server closes it, the next
batch reconnects. Outcomes are counted in :class:`Tally` by kind: ``ok``, an
error code, ``challenge``, ``close: <reason's first words>``, ``eof``.

Fuzz connections come from their own loopback addresses (127.0.0.2 for the
registered session, 127.0.0.3 to 127.0.0.254 in turn for the rest) so that
the login back-off and the secret tarpit they earn per source never fall on
the good client (127.0.0.1), and fall on the fuzz cases only as often as on
252 guessers.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from addp import FrameDecoder, FrameKind, decode_payload, encode_frame, encode_payload
from confserv.wire.auth import ClientHandshake, Purpose

from .frames import GOOD_HELLO, Case, message_frame

#: Longest a case may take from its last byte to the server's close.
CASE_TIMEOUT = 10.0
#: Source addresses of the fuzz connections.
SESSION_SOURCE = "127.0.0.2"
FRESH_SOURCES = tuple(f"127.0.0.{i}" for i in range(3, 255))
_next_source = itertools.cycle(FRESH_SOURCES)
_WORDS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Port:
    """One port under fuzz: ``client``, ``management`` or ``control``."""

    name: str
    host: str
    port: int
    table: Mapping[str, Mapping[str, str]]


@dataclass
class Tally:
    """What one (port, generator) saw."""

    cases: int = 0
    connections: int = 0
    #: Connections the server ended with a CLOSE frame.
    closed: int = 0
    hangs: int = 0
    #: Server bytes that did not decode as frames (a defect of the server).
    bad_output: int = 0
    answers: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to this one."""
        self.cases += other.cases
        self.connections += other.connections
        self.closed += other.closed
        self.hangs += other.hangs
        self.bad_output += other.bad_output
        self.answers.update(other.answers)


def close_kind(reason: Any) -> str:
    """A CLOSE reason, shortened to what kind of close it is (numbers and details dropped)."""
    text = reason.get("reason") if isinstance(reason, dict) else None
    if not isinstance(text, str):
        return "close: ?"
    head = text.split(":", 1)[0] if ":" in text[:40] else " ".join(text.split()[:4])
    return "close: " + _WORDS.sub("N", head)[:40]


def answer_kind(msg: Any) -> str | None:
    """The kind of a server's message; None for what is no answer (a chunk, a notification)."""
    if isinstance(msg, dict):
        if "challenge" in msg:
            return "challenge"
        if "ok" in msg:
            return "ok" if msg["ok"] is True else str(msg.get("code", "?"))
    return None


async def connect(host: str, port: int, source: str) -> trio.SocketStream:
    """A TCP connection from ``source`` (a loopback address) to ``host:port``."""
    sock = trio.socket.socket()
    try:
        await sock.bind((source, 0))
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def _read_frames(decoder: FrameDecoder, data: bytes, tally: Tally) -> list[tuple[FrameKind, Any]]:
    try:
        frames = decoder.feed(data)
    except Exception:
        tally.bad_output += 1
        return []
    out = []
    for kind, payload in frames:
        try:
            out.append((kind, decode_payload(payload)))
        except Exception:
            tally.bad_output += 1
    return out


async def send_case(port: Port, case: Case, tally: Tally) -> None:
    """One case on a fresh connection; its outcome into ``tally``."""
    tally.cases += 1
    try:
        stream = await connect(port.host, port.port, next(_next_source))
    except OSError:
        tally.answers["connect refused"] += 1
        return
    tally.connections += 1
    decoder = FrameDecoder()
    async with stream:
        try:
            await stream.send_all((GOOD_HELLO if case.hello else b"") + case.data)
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the server closed before it took everything (a header it refused)
        closed = False
        with trio.move_on_after(CASE_TIMEOUT) as scope:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    data = b""
                if not data:
                    break
                for kind, value in _read_frames(decoder, data, tally):
                    if kind is FrameKind.MESSAGE:
                        what = answer_kind(value)
                        if what is not None:
                            tally.answers[what] += 1
                    elif kind is FrameKind.CLOSE:
                        closed = True
                        tally.answers[close_kind(value)] += 1
        if scope.cancelled_caught:
            tally.hangs += 1
        elif closed:
            tally.closed += 1
        else:
            tally.answers["eof"] += 1


class Session:
    """An authenticated connection taking batches of requests: registered on the client
    port (``user``, ``password``), or authenticated with ``secret`` on a management or
    control port."""

    def __init__(self, port: Port, user: str = "", password: str = "", secret: str = "") -> None:
        self.port, self.user, self.password, self.secret = port, user, password, secret
        self._stream: trio.SocketStream | None = None
        self._decoder = FrameDecoder()

    async def _open(self, tally: Tally) -> trio.SocketStream:
        stream = await connect(self.port.host, self.port.port, SESSION_SOURCE)
        tally.connections += 1
        self._decoder = FrameDecoder()
        handshake: ClientHandshake | None = None
        if self.port.name == "client":
            await stream.send_all(GOOD_HELLO + message_frame(self._register()))
        else:
            purpose = Purpose.MANAGEMENT if self.port.name == "management" else Purpose.CONTROL
            handshake = ClientHandshake((purpose,), self.secret)
            await stream.send_all(GOOD_HELLO)
        with trio.fail_after(CASE_TIMEOUT):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    raise ConnectionError(f"{self.port.name}: closed before authenticating")
                for kind, value in _read_frames(self._decoder, data, tally):
                    if kind is not FrameKind.MESSAGE or not isinstance(value, dict):
                        continue
                    if handshake is not None and "challenge" in value:
                        auth = {"op": "auth", "id": 0, **handshake.challenge(value)}
                        await stream.send_all(message_frame(auth))
                    elif value.get("re") == 0:
                        if value.get("ok") is not True:
                            raise ConnectionError(f"{self.port.name}: refused the fuzzer: {value}")
                        if handshake is not None:
                            handshake.verify(value)
                        self._stream = stream
                        return stream

    def _register(self) -> dict[str, Any]:
        return {
            "op": "register",
            "id": 0,
            "app": "fuzz",
            "user": self.user,
            "password": self.password,
        }

    async def batch(self, messages: Sequence[bytes], tally: Tally) -> None:
        """Send ``messages`` (encoded frames) at once and read until each is answered."""
        tally.cases += len(messages)
        stream = self._stream or await self._open(tally)
        try:
            await stream.send_all(b"".join(messages))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self._drop()
            tally.answers["send failed"] += 1
            return
        waiting = len(messages)
        with trio.move_on_after(CASE_TIMEOUT) as scope:
            while waiting:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    data = b""
                if not data:
                    tally.answers["eof"] += 1
                    await self._drop()
                    return
                replies = b""
                for kind, value in _read_frames(self._decoder, data, tally):
                    if kind is FrameKind.MESSAGE:
                        what = answer_kind(value)
                        if what is not None and what != "challenge":  # pushes are not answers
                            waiting -= 1
                            tally.answers[what] += 1
                    elif kind is FrameKind.POLL:
                        replies += encode_frame(FrameKind.REPLY, encode_payload(value))
                    elif kind is FrameKind.CLOSE:
                        tally.closed += 1
                        tally.answers[close_kind(value)] += 1
                        await self._drop()
                        return
                if replies:
                    await stream.send_all(replies)
        if scope.cancelled_caught:
            tally.hangs += 1
            await self._drop()

    async def _drop(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def aclose(self) -> None:
        """Close the connection (if open)."""
        await self._drop()
