"""A read answer cut into messages bounded in bytes as well as in objects.

A read of many large objects used to go out in chunks of 500 objects
whatever their size: with objects near ``max-object-size`` a chunk was far
over the frame limit. :class:`ReadChunker` encodes each object once and
hands back a ready chunk message (``{"re": id, "objects": [...]}``, built from
the encoded objects, no second encoding) as soon as the objects waiting
reach ``max_count`` or ``max_bytes``; what is left goes in the final answer.
Pure: no I/O.
"""

from __future__ import annotations

import struct
from typing import Any

from addp import encode_payload


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


#: A chunk message's map header and ``re`` key; its ``objects`` key.
_HEAD = b"\x82" + encode_payload("re")
_OBJECTS = encode_payload("objects")

#: The most bytes of objects in one chunk (half the peer's frame limit when smaller).
READ_CHUNK_BYTES = 1024 * 1024


def chunker_for(request_id: int, peer_max_frame_size: int, max_count: int) -> ReadChunker:
    """A chunker whose chunks fit a peer that accepts ``peer_max_frame_size`` bytes."""
    limit = min(READ_CHUNK_BYTES, peer_max_frame_size // 2)
    return ReadChunker(request_id, max_count=max_count, max_bytes=max(limit, 1))


class ReadChunker:
    """Objects of one read answer, cut into chunk messages (see module docstring).

    Args:
        request_id: the ``id`` of the read request (each chunk carries it as ``re``).
        max_count: the most objects in one chunk.
        max_bytes: a chunk is sent once its objects encode to this many bytes.
    """

    def __init__(self, request_id: int, *, max_count: int, max_bytes: int) -> None:
        if max_count < 1 or max_bytes < 1:
            raise ValueError("max_count and max_bytes must be at least 1")
        self._request_id = request_id
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._objects: list[dict[str, Any]] = []
        self._encoded: list[bytes] = []
        self._bytes = 0
        #: Objects handed out in chunks so far.
        self.sent = 0

    def add(self, obj: dict[str, Any]) -> bytes | None:
        """Take one object; returns an encoded chunk message when one is full."""
        data = encode_payload(obj)
        self._objects.append(obj)
        self._encoded.append(data)
        self._bytes += len(data)
        if len(self._encoded) < self.max_count and self._bytes < self.max_bytes:
            return None
        head = _HEAD + encode_payload(self._request_id) + _OBJECTS
        chunk = head + _array_header(len(self._encoded)) + b"".join(self._encoded)
        self.sent += len(self._encoded)
        self._objects, self._encoded, self._bytes = [], [], 0
        return chunk

    def rest(self) -> list[dict[str, Any]]:
        """The objects not sent in a chunk, for the final answer."""
        return self._objects
