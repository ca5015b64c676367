"""The frame decoder: any chunking gives the same frames; bad bytes give one specific error."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addp import (
    HEADER_SIZE,
    MAGIC,
    BadFlagsError,
    BadMagicError,
    FrameDecoder,
    FrameKind,
    FrameTooLargeError,
    MalformedPayloadError,
    RemoteProtocolError,
    UnknownFrameKindError,
    decode_payload,
    encode_frame,
    encode_payload,
)

LIMIT = 4096

payload_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.binary(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
frames = st.lists(
    st.tuples(st.sampled_from(list(FrameKind)), payload_values).map(
        lambda kv: (kv[0], encode_payload(kv[1]))
    ),
    max_size=20,
).filter(lambda fs: all(len(p) <= LIMIT for _, p in fs))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(data[start:p])
        start = p
    pieces.append(data[start:])
    return pieces


@given(frames=frames, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_every_chunking_yields_the_same_frames(
    frames: list[tuple[FrameKind, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(k, p) for k, p in frames)
    decoder = FrameDecoder(max_frame_size=LIMIT)
    got: list[tuple[FrameKind, bytes]] = []
    for piece in split(stream, cuts):
        got.extend(decoder.feed(piece))
    assert got == frames
    assert decoder.buffered == 0


@given(value=payload_values)
def test_payload_round_trip(value: object) -> None:
    assert decode_payload(encode_payload(value)) == value


def feed_all(decoder: FrameDecoder, pieces: list[bytes]) -> None:
    for piece in pieces:
        for _kind, payload in decoder.feed(piece):
            with contextlib.suppress(MalformedPayloadError):
                decode_payload(payload)
        assert decoder.buffered <= HEADER_SIZE + LIMIT + max((len(p) for p in pieces), default=0)


@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_random_bytes_give_frames_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    try:
        feed_all(decoder, split(data, cuts))
    except RemoteProtocolError as exc:
        assert str(exc)
        # A failed decoder stays failed and holds nothing.
        with pytest.raises(type(exc)):
            decoder.feed(b"")
        assert decoder.buffered == 0


@given(
    frames=frames.filter(bool),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_mutated_streams_give_frames_or_a_protocol_error(
    frames: list[tuple[FrameKind, bytes]], flips: list[tuple[int, int]], cuts: list[int]
) -> None:
    data = bytearray(b"".join(encode_frame(k, p) for k, p in frames))
    for pos, value in flips:
        data[pos % len(data)] = value
    decoder = FrameDecoder(max_frame_size=LIMIT)
    try:
        feed_all(decoder, split(bytes(data), cuts))
    except RemoteProtocolError as exc:
        assert str(exc)


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    header = struct.pack(">2sBBI", MAGIC, FrameKind.MESSAGE, 0, LIMIT + 1)
    with pytest.raises(FrameTooLargeError, match=f"{LIMIT + 1} bytes exceeds the limit of {LIMIT}"):
        decoder.feed(header)
    assert decoder.buffered == 0


def test_a_frame_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    payload = b"\xc4" + b"x" * (LIMIT - 1)  # any bytes: the decoder does not parse payloads
    assert decoder.feed(encode_frame(FrameKind.MESSAGE, payload)) == [(FrameKind.MESSAGE, payload)]


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b"GET / HTTP/1.1\r\n", BadMagicError, "expected add9"),
        (b"\x00", BadMagicError, "expected add9"),
        (struct.pack(">2sBBI", MAGIC, 99, 0, 0), UnknownFrameKindError, "unknown frame kind 99"),
        (struct.pack(">2sBBI", MAGIC, 2, 1, 0), BadFlagsError, "reserved flags 0x01"),
    ],
)
def test_each_defect_has_its_own_error(
    data: bytes, error: type[RemoteProtocolError], text: str
) -> None:
    with pytest.raises(error, match=text):
        FrameDecoder(max_frame_size=LIMIT).feed(data)


@pytest.mark.parametrize("payload", [b"\xc1", b"\x92\x01", b"\xd4\x01\x02", b"\x91\x01\x02"])
def test_bad_payloads_are_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedPayloadError):
        decode_payload(payload)


def test_frame_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max frame size 10"):
        FrameDecoder(max_frame_size=10)


def test_encoding_an_unencodable_value_names_its_type() -> None:
    with pytest.raises(TypeError, match="object"):
        encode_payload(object())


def test_timestamps_are_refused_like_other_extensions() -> None:
    import msgpack

    payload = msgpack.packb({"t": msgpack.Timestamp(1, 0)})
    with pytest.raises(MalformedPayloadError, match="timestamp"):
        decode_payload(payload)


def test_integer_map_keys_round_trip() -> None:
    assert decode_payload(encode_payload({1: "a", "b": 2})) == {1: "a", "b": 2}


def test_good_frames_before_garbage_are_delivered_then_the_error() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    close = encode_frame(FrameKind.CLOSE, encode_payload({"reason": "bye"}))
    assert decoder.feed(close + b"garbage!") == [(FrameKind.CLOSE, close[HEADER_SIZE:])]
    with pytest.raises(BadMagicError):
        decoder.feed(b"")
