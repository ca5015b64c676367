"""Frame layout, payload encoding and the incremental, bounded frame decoder.

A frame is an 8-byte header followed by a msgpack payload::

    0      2      3      4              8
    +------+------+------+--------------+---------------------+
    | AD D9| kind | flags| length (u32) | payload (length B)  |
    +------+------+------+--------------+---------------------+

All integers are big-endian. ``docs/protocol.md`` is the full specification.
This module knows nothing of ADDP timing or of sockets.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import msgpack

from ._errors import (
    BadFlagsError,
    BadMagicError,
    FrameTooLargeError,
    MalformedPayloadError,
    UnknownFrameKindError,
)
from ._peer_text import peer_repr

#: The two bytes every frame starts with.
MAGIC = b"\xad\xd9"
#: Size of the fixed frame header in bytes.
HEADER_SIZE = 8
#: Default largest payload accepted, in bytes (4 MiB).
DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
#: The smallest limit that still carries a handshake.
MIN_MAX_FRAME_SIZE = 1024
#: The largest limit the 32-bit length field can express.
MAX_MAX_FRAME_SIZE = 0xFFFFFFFF
#: Deepest nesting of maps and lists a payload may have (a message is a few levels).
MAX_PAYLOAD_DEPTH = 32
# msgpack's own decoder refuses more than 1024 nested containers (StackError);
# a payload behind this many one-element arrays gets MAX_PAYLOAD_DEPTH of them.
_MSGPACK_STACK = 1024
_DEPTH_PREFIX = b"\x91" * (_MSGPACK_STACK - MAX_PAYLOAD_DEPTH)
# Every level of nesting starts with one of these bytes (fixmap, fixarray, array
# 16/32, map 16/32). A payload holding at most MAX_PAYLOAD_DEPTH of them, wherever
# they are (strings included), cannot nest deeper, and is decoded without the
# prefix: building the prefix's 992 lists cost 37 us a decode (0.5 us without), a
# ninefold slowdown of the whole simulation.
_NOT_CONTAINER_START = bytes(b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF))

_HEADER = struct.Struct(">2sBBI")


class FrameKind(enum.IntEnum):
    """What a frame carries; the third header byte."""

    #: Handshake: protocol versions, ADDP parameters, application hello.
    HELLO = 1
    #: One application message.
    MESSAGE = 2
    #: ADDP poll: "are you there?", carrying a sequence number.
    POLL = 3
    #: ADDP reply to a poll, echoing its sequence number.
    REPLY = 4
    #: Orderly close, carrying a reason.
    CLOSE = 5


_KINDS = frozenset(int(k) for k in FrameKind)


def _no_ext(code: int, data: bytes) -> object:
    raise MalformedPayloadError(f"msgpack extension type {code} is not allowed")


def encode_payload(value: Any) -> bytes:
    """Encode one payload value as msgpack (maps, lists, str, bytes, ints, floats, bool, nil)."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot encode {type(value).__name__} as an ADDP payload: {exc}") from exc


# msgpack decodes extension type -1 (timestamp) itself, without calling ext_hook;
# these are the three encodings that can carry it (each holds 0xff: one quick test
# clears most payloads).
_TIMESTAMP_MARKERS = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")


def _refuse_timestamps(value: Any) -> None:
    if isinstance(value, msgpack.Timestamp):
        raise MalformedPayloadError("msgpack extension type -1 (timestamp) is not allowed")
    if isinstance(value, list):
        for item in value:
            _refuse_timestamps(item)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_timestamps(item)


def decode_payload(payload: bytes) -> Any:
    """Decode one msgpack payload; any defect raises :class:`MalformedPayloadError`.

    Map keys may be strings or integers; extension types (timestamps too) are refused,
    and so is nesting deeper than :data:`MAX_PAYLOAD_DEPTH` maps and lists (one
    clear error, instead of recursion in whatever formats or walks the value).
    """
    # The prefix makes msgpack's own stack limit the depth limit: no walk of the value.
    deep = len(payload.translate(None, _NOT_CONTAINER_START)) > MAX_PAYLOAD_DEPTH
    prefix = _DEPTH_PREFIX if deep else b""
    try:
        value = msgpack.unpackb(
            prefix + payload,
            raw=False,
            use_list=True,
            ext_hook=_no_ext,
            strict_map_key=False,
        )
    except MalformedPayloadError:
        raise
    except msgpack.StackError:
        raise MalformedPayloadError(
            f"payload nests maps and lists deeper than {MAX_PAYLOAD_DEPTH} levels"
        ) from None
    except Exception as exc:  # msgpack raises many types for bad input; all mean one thing
        raise MalformedPayloadError(f"payload is not valid msgpack: {exc}") from None
    for _ in range(len(prefix)):
        value = value[0]
    if b"\xff" in payload and any(marker in payload for marker in _TIMESTAMP_MARKERS):
        _refuse_timestamps(value)
    return value


def encode_frame(kind: FrameKind, payload: bytes) -> bytes:
    """Return the bytes of one frame: header then ``payload``."""
    return _HEADER.pack(MAGIC, kind, 0, len(payload)) + payload


def check_max_frame_size(value: int) -> int:
    """Validate a frame size limit, returning it."""
    if not MIN_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
        raise ValueError(
            f"max frame size {value} is outside {MIN_MAX_FRAME_SIZE} to {MAX_MAX_FRAME_SIZE}"
        )
    return value


class FrameDecoder:
    """Turns a byte stream, in any chunking, into ``(kind, payload)`` frames.

    The decoder checks each header as soon as its 8 bytes are in, so an
    oversized or garbled frame is refused before its payload is buffered:
    memory held is at most one incomplete frame (``HEADER_SIZE +
    max_frame_size``) plus the chunk being fed. After an error the decoder
    stays failed; the connection must be dropped.
    """

    __slots__ = ("_buffer", "_error", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = check_max_frame_size(max_frame_size)
        self._buffer = bytearray()
        self._error: Exception | None = None

    @property
    def pending_error(self) -> Exception | None:
        """The error held back behind good frames, raised by the next :meth:`feed`."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> list[tuple[FrameKind, bytes]]:
        """Add ``data`` and return every frame it completes, in order.

        Raises:
            RemoteProtocolError: a subclass naming the defect (bad magic,
                reserved flags set, unknown kind, oversized length).
        """
        if self._error is not None:
            raise self._error
        buf = self._buffer
        buf += data
        frames: list[tuple[FrameKind, bytes]] = []
        pos = 0
        # An error after good frames is held back: the good frames are returned
        # now (a CLOSE followed by garbage is still a close) and the error is
        # raised by the next call.
        end = len(buf)
        try:
            while end - pos >= HEADER_SIZE:
                magic, kind, flags, length = _HEADER.unpack_from(buf, pos)
                self._check_header(magic, kind, flags, length)
                stop = pos + HEADER_SIZE + length
                if stop > end:
                    break
                frames.append((FrameKind(kind), bytes(buf[pos + HEADER_SIZE : stop])))
                pos = stop
            if end - pos < HEADER_SIZE and end - pos > 0:
                # A partial header can already be wrong: check the magic we have.
                partial = bytes(buf[pos : pos + 2])
                if not MAGIC.startswith(partial):
                    raise BadMagicError(f"frame starts with {partial.hex()}, expected add9")
        except Exception as exc:
            self._error = exc
            del buf[:]
            if frames:
                return frames
            raise
        del buf[:pos]
        return frames

    def _check_header(self, magic: bytes, kind: int, flags: int, length: int) -> None:
        if magic != MAGIC:
            raise BadMagicError(f"frame starts with {magic.hex()}, expected add9")
        if kind not in _KINDS:
            raise UnknownFrameKindError(f"unknown frame kind {kind}")
        if flags:
            raise BadFlagsError(f"reserved flags {flags:#04x} are set in a {FrameKind(kind).name}")
        if length > self.max_frame_size:
            raise FrameTooLargeError(
                f"{FrameKind(kind).name} frame of {length} bytes exceeds the "
                f"limit of {self.max_frame_size} bytes"
            )


#: The kind byte of a MESSAGE.
_MESSAGE_KIND = int(FrameKind.MESSAGE)
#: msgpack's unsigned int markers and the payload size each makes.
_UINT_SIZES = {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}


def single_message(data: bytes | bytearray, max_frame_size: int) -> bool:
    """Whether ``data`` is exactly one MESSAGE frame with a well-formed header whose
    payload is within ``max_frame_size`` (anything else is for the general decoder)."""
    return (
        len(data) > HEADER_SIZE
        and data[0] == 0xAD
        and data[1] == 0xD9
        and data[2] == _MESSAGE_KIND
        and data[3] == 0
        and int.from_bytes(data[4:8], "big") == len(data) - HEADER_SIZE <= max_frame_size
    )


def keepalive_frame(data: bytes | bytearray) -> tuple[FrameKind, int] | None:
    """``(kind, seq)`` when ``data`` is exactly one well-formed POLL or REPLY frame
    whose payload is a msgpack unsigned int (fixint or uint 8/16/32/64), else None
    (anything else, or anything malformed, is for the general decoder)."""
    size = len(data) - HEADER_SIZE
    if size < 1 or size > 9 or data[0] != 0xAD or data[1] != 0xD9:
        return None
    kind = data[2]
    if kind not in (FrameKind.POLL, FrameKind.REPLY) or data[3] != 0:
        return None
    if int.from_bytes(data[4:8], "big") != size:
        return None
    first = data[8]
    if first < 0x80:
        return (FrameKind(kind), first) if size == 1 else None
    if _UINT_SIZES.get(first) != size:
        return None
    return FrameKind(kind), int.from_bytes(data[9:], "big")


#: The kind byte of a REPLY, spliced into a POLL's bytes to answer it.
_REPLY_KIND = bytes([FrameKind.REPLY])


def reply_to_poll(poll: bytes | bytearray) -> bytes:
    """The REPLY frame answering the POLL frame ``poll``: the same bytes, another kind."""
    return _REPLY_KIND.join((poll[:2], poll[3:]))


def keepalive_seq(value: Any, kind: str) -> int:
    """The sequence number a decoded POLL or REPLY payload (``kind``) carries.

    Raises:
        MalformedPayloadError: it is not a non-negative integer.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedPayloadError(
            f"{kind} payload must be a non-negative integer, got {peer_repr(value)}"
        )
    return value
