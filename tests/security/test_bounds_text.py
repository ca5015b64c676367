"""Peer data in log lines and error texts: bounded, on one line (issue 12).

The audit: a client name with a newline forged a log line, a HELLO whose
``versions`` is a 4 MiB string was logged whole (86 MB/s from one client),
and 1,000-deep nesting made the server's own error formatting recurse.
"""

from __future__ import annotations

import io

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from addp import (
    AddpOptions,
    Connection,
    FrameKind,
    HandshakeError,
    MalformedPayloadError,
    decode_payload,
    encode_frame,
    encode_payload,
)
from addp._frames import MAX_PAYLOAD_DEPTH
from confserv.logs import events
from confserv.logs.eventlog import FIELD_LIMIT, EventLog
from confserv.logs.peer_text import peer_repr, peer_text


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_peer_text_is_one_bounded_line(text: str, limit: int) -> None:
    out = peer_text(text, limit)
    assert not any(ch in out for ch in "\n\r\x00\x1b\x85\u2028\u2029")
    assert all(ord(ch) >= 0x20 and not 0x7F <= ord(ch) < 0xA0 for ch in out)
    assert len(out) <= limit + len(f"… ({len(text)} chars)")
    if len(out) > limit:
        assert out.endswith(f"… ({len(text)} chars)")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50))
def test_peer_text_leaves_short_printable_text_alone(text: str) -> None:
    assert peer_text(text, 50) == text


def test_peer_text_marks_a_cut_with_the_original_length() -> None:
    assert peer_text("x" * 4_194_304) == "x" * 200 + "… (4194304 chars)"
    assert (
        peer_text("evil\n00:00:00.000 Std 20110 forged") == "evil\\n00:00:00.000 Std 20110 forged"
    )


def test_peer_repr_of_deep_and_huge_values_is_bounded() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    assert len(peer_repr(deep)) <= 200
    assert len(peer_repr({"k": "v" * 10_000_000})) <= 220


def test_a_client_name_with_a_newline_writes_one_line() -> None:
    out = io.StringIO()
    log = EventLog("t", out, verbose="all")
    log.emit(
        events.CLIENT_REGISTERED,
        app="x\n12:00:00.000 Alr 20150 Configuration Database error: forged",
        app_type="client",
        user="u",
        peer="127.0.0.1:1",
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "\\n12:00:00.000 Alr 20150" in lines[0]


def test_a_4_mib_field_is_written_cut() -> None:
    out = io.StringIO()
    EventLog("t", out, verbose="all").emit(events.BAD_PEER, text="v" * (4 << 20))
    line = out.getvalue()
    assert len(line) < FIELD_LIMIT + 100
    assert f"… ({4 << 20} chars)" in line


def test_a_library_traceback_is_still_written_whole() -> None:
    import logging

    out = io.StringIO()
    logger = logging.getLogger("tests.security.bounds")
    logger.handlers[:] = [EventLog("t", out, verbose="all").handler(events.BAD_PEER)]
    logger.propagate = False
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("link x: handler failed")
    text = out.getvalue()
    assert "Traceback (most recent call last):" in text
    assert "ValueError: boom" in text


def hello(**fields: object) -> bytes:
    return encode_frame(FrameKind.HELLO, encode_payload({"versions": [1, 1], **fields}))


def test_a_hello_with_4_mib_of_versions_is_refused_with_a_short_error() -> None:
    conn = Connection(AddpOptions(), max_frame_size=8 << 20)
    conn.start(0)
    with pytest.raises(HandshakeError) as caught:
        conn.receive_data(hello(versions="v" * (4 << 20)), 0)
    assert len(str(caught.value)) < 400
    assert "must be [min, max] integers" in str(caught.value)


def test_close_reasons_both_ways_have_no_newline() -> None:
    from addp import ConnectionClosed, FrameDecoder
    from addp.transport.ends import end_reason

    a = Connection(AddpOptions())
    a.start(0)
    a.close("line\nforged", 0)
    frames = FrameDecoder().feed(a.data_to_send())
    assert [kind for kind, _ in frames] == [FrameKind.HELLO, FrameKind.CLOSE]
    assert msgpack.unpackb(frames[1][1])["reason"] == "line\\nforged"
    reason = str(end_reason(ConnectionClosed("bye\n" + "x" * 10_000)))
    assert reason.startswith("closed by peer: bye\\nxxx")
    assert len(reason) < 400


def test_nesting_deeper_than_the_limit_is_one_clear_error() -> None:
    ok = b"\x91" * MAX_PAYLOAD_DEPTH + b"\x01"
    value = decode_payload(ok)
    for _ in range(MAX_PAYLOAD_DEPTH):
        value = value[0]
    assert value == 1
    for depth in (MAX_PAYLOAD_DEPTH + 1, 1000, 1024, 100_000):
        with pytest.raises(MalformedPayloadError, match=f"deeper than {MAX_PAYLOAD_DEPTH} levels"):
            decode_payload(b"\x91" * depth + b"\x01")
    deep_maps = b"\x81\xa1k" * 1000 + b"\x01"
    with pytest.raises(MalformedPayloadError, match="deeper than"):
        decode_payload(deep_maps)


@given(
    st.recursive(
        st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_decoding_is_unchanged_within_the_depth_limit(value: object) -> None:
    assert decode_payload(encode_payload(value)) == value


@given(
    depth=st.integers(min_value=1, max_value=80),
    filler=st.binary(max_size=64),
    wrap=st.sampled_from(["list", "map"]),
)
def test_the_depth_limit_holds_whatever_else_the_payload_holds(
    depth: int, filler: bytes, wrap: str
) -> None:
    """Payloads with few container bytes skip the depth prefix (a fast path): the limit
    is the same either way, with binary full of container-like bytes beside it."""
    value: object = filler
    for _ in range(depth):
        value = [value] if wrap == "list" else {"k": value}
    # depth levels around the bytes, inside a list that holds the bytes again
    payload = encode_payload([filler, value])
    if depth + 1 <= MAX_PAYLOAD_DEPTH:
        assert decode_payload(payload) == [filler, value]
    else:
        with pytest.raises(MalformedPayloadError, match="deeper than"):
            decode_payload(payload)
