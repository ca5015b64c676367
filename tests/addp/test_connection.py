"""Two sans-IO connections wired back to back, on plain numbers for time."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from addp import (
    AddpOptions,
    Connection,
    ConnectionClosed,
    ConnectionState,
    FrameKind,
    HandshakeComplete,
    HandshakeError,
    LocalProtocolError,
    Message,
    MessageTooLargeError,
    PeerLostEvent,
    RemoteProtocolError,
    Trace,
    TraceMode,
    UnexpectedFrameError,
    combine_timeouts,
    decode_payload,
    encode_frame,
    encode_payload,
)
from addp._events import Event
from addp._frames import FrameDecoder, keepalive_frame, single_message


def pump(src: Connection, dst: Connection, now: float) -> list[Event]:
    return dst.receive_data(src.data_to_send(), now)


def open_pair(
    a_opts: AddpOptions, b_opts: AddpOptions, now: float = 0.0
) -> tuple[Connection, Connection, HandshakeComplete, HandshakeComplete]:
    a = Connection(a_opts, hello={"app": "a"}, now=now)
    b = Connection(b_opts, hello={"app": "b"}, now=now)
    a.start(now)
    b.start(now)
    (hb,) = pump(a, b, now)
    (ha,) = pump(b, a, now)
    assert isinstance(ha, HandshakeComplete)
    assert isinstance(hb, HandshakeComplete)
    return a, b, ha, hb


def test_handshake_exchanges_hellos_and_pushes_the_remote_timeout() -> None:
    client = AddpOptions.addp(timeout=20, remote_timeout=40)
    server = AddpOptions()  # protocol = default, as a Genesys server side usually is
    a, b, ha, hb = open_pair(client, server)
    assert ha.peer_hello == {"app": "b"}
    assert hb.peer_hello == {"app": "a"}
    assert ha.version == hb.version == 1
    assert ha.local_timeout == 20.0
    assert hb.local_timeout == 40.0  # the server runs what the client pushed
    assert a.state is b.state is ConnectionState.OPEN


@given(own=st.floats(0, 3600), pushed=st.floats(0, 3600))
def test_the_stricter_nonzero_timeout_wins(own: float, pushed: float) -> None:
    got = combine_timeouts(own, pushed)
    if own and pushed:
        assert got == min(own, pushed)
    else:
        assert got == max(own, pushed)


def test_messages_flow_both_ways() -> None:
    a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    a.send({"n": 1}, 0.1)
    a.send([1, 2, 3], 0.1)
    assert pump(a, b, 0.2) == [Message({"n": 1}), Message([1, 2, 3])]
    b.send("hi", 0.3)
    assert pump(b, a, 0.3) == [Message("hi")]


def test_silent_peer_is_polled_then_lost() -> None:
    a, _b, _, _ = open_pair(AddpOptions.addp(timeout=1.0), AddpOptions())
    assert a.next_deadline() == 1.0
    assert a.handle_timeout(1.0) == []
    assert a.data_to_send()[:3] == encode_frame(FrameKind.POLL, b"")[:3]
    assert a.next_deadline() == 2.0
    (lost,) = a.handle_timeout(2.0)
    assert lost == PeerLostEvent(silence=2.0, timeout=1.0, seq=1)
    assert a.state is ConnectionState.CLOSED
    assert a.next_deadline() is None


def test_polls_are_answered_and_the_answer_keeps_the_link_up() -> None:
    a, b, _, _ = open_pair(AddpOptions.addp(timeout=1.0), AddpOptions())
    a.handle_timeout(1.0)
    assert pump(a, b, 1.1) == []  # b answers silently (no trace)
    assert pump(b, a, 1.2) == []
    assert a.next_deadline() == pytest.approx(2.2)
    assert a.keepalive.statistics().replies_received == 1


@pytest.mark.parametrize(
    ("a_trace", "b_trace", "a_traces", "b_traces"),
    [
        (TraceMode.OFF, TraceMode.OFF, False, False),
        (TraceMode.LOCAL, TraceMode.OFF, True, False),
        (TraceMode.REMOTE, TraceMode.OFF, False, True),
        (TraceMode.BOTH, TraceMode.OFF, True, True),
        (TraceMode.OFF, TraceMode.REMOTE, True, False),
    ],
)
def test_trace_lines_go_to_the_side_the_mode_names(
    a_trace: TraceMode, b_trace: TraceMode, a_traces: bool, b_traces: bool
) -> None:
    a, b, _, _ = open_pair(
        AddpOptions.addp(timeout=1.0, trace=a_trace), AddpOptions(trace=b_trace, enabled=True)
    )
    a_events = a.handle_timeout(1.0)
    b_events = pump(a, b, 1.1)
    a_events += pump(b, a, 1.2)
    assert any(isinstance(e, Trace) for e in a_events) is a_traces
    assert any(isinstance(e, Trace) for e in b_events) is b_traces


def test_close_reaches_the_peer_with_its_reason() -> None:
    a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    a.close("shutting down", 1.0)
    assert pump(a, b, 1.0) == [ConnectionClosed("shutting down")]
    assert b.state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        b.send("late", 1.0)


def test_end_of_stream_is_a_close() -> None:
    _a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    assert b.receive_data(b"", 1.0) == [ConnectionClosed("end of stream")]


def test_send_before_handshake_is_a_local_error() -> None:
    a = Connection(AddpOptions())
    with pytest.raises(LocalProtocolError, match="IDLE"):
        a.send("x", 0)


def test_message_before_hello_is_refused() -> None:
    b = Connection(AddpOptions())
    b.start(0)
    with pytest.raises(UnexpectedFrameError, match="MESSAGE frame before the peer's HELLO"):
        b.receive_data(encode_frame(FrameKind.MESSAGE, encode_payload(1)), 0)
    assert b.state is ConnectionState.ERROR
    b.close("protocol error", 0)
    assert b.data_to_send().endswith(encode_payload({"reason": "protocol error"}))


@pytest.mark.parametrize(
    ("hello", "text"),
    [
        ([1, 2], "must be a map"),
        ({"versions": [2, 3]}, "no protocol version in common"),
        ({"versions": [1]}, "'versions' must be"),
        ({"versions": [1, 1], "remote-timeout": -5}, "'remote-timeout'"),
        ({"versions": [1, 1], "remote-trace": "yes"}, "'remote-trace'"),
        ({"versions": [1, 1], "max-frame-size": 3}, "'max-frame-size'"),
    ],
)
def test_bad_hellos_are_refused_with_the_reason(hello: object, text: str) -> None:
    b = Connection(AddpOptions())
    b.start(0)
    with pytest.raises(HandshakeError, match=text):
        b.receive_data(encode_frame(FrameKind.HELLO, encode_payload(hello)), 0)


def test_a_second_hello_is_refused() -> None:
    _a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    with pytest.raises(HandshakeError, match="OPEN"):
        b.receive_data(encode_frame(FrameKind.HELLO, encode_payload({"versions": [1, 1]})), 0)


def test_a_message_over_the_peers_limit_is_refused_before_sending() -> None:
    a = Connection(AddpOptions(), max_frame_size=4096)
    b = Connection(AddpOptions(), max_frame_size=2048)
    a.start(0)
    b.start(0)
    pump(a, b, 0)
    pump(b, a, 0)
    with pytest.raises(MessageTooLargeError, match="limit of 2048"):
        a.send("x" * 3000, 0)
    assert a.data_to_send() == b""


@given(data=st.binary(max_size=500))
def test_random_bytes_after_the_handshake_give_events_or_a_protocol_error(data: bytes) -> None:
    _a, b, _, _ = open_pair(AddpOptions.addp(1.0), AddpOptions.addp(1.0))
    try:
        events = b.receive_data(data, 0.5)
    except RemoteProtocolError:
        assert b.state is ConnectionState.ERROR
    else:
        assert all(isinstance(e, (Message, ConnectionClosed, Trace)) for e in events)


def test_a_poll_before_hello_is_refused() -> None:
    b = Connection(AddpOptions())
    b.start(0)
    with pytest.raises(UnexpectedFrameError, match="POLL frame before"):
        b.receive_data(encode_frame(FrameKind.POLL, encode_payload(1)), 0)


def test_close_reasons_are_bounded() -> None:
    a, b, _, _ = open_pair(AddpOptions(), AddpOptions())
    a.close("x" * 5000, 0)
    (closed,) = pump(a, b, 0)
    assert isinstance(closed, ConnectionClosed)
    assert len(closed.reason) <= 300
    assert closed.reason.endswith("...")


def test_a_large_application_hello_is_refused_locally() -> None:
    a = Connection(AddpOptions(), hello="x" * 2000)
    with pytest.raises(LocalProtocolError, match="keep the application hello small"):
        a.start(0)


def test_a_tiny_remote_timeout_is_not_sent_as_off() -> None:
    _a, _b, _ha, hb = open_pair(AddpOptions.addp(1.0, remote_timeout=0.0001), AddpOptions())
    assert hb.local_timeout == 0.001


_UINT_FORMS = [b"", b"\xcc", b"\xcd", b"\xce", b"\xcf"]


def _uint(value: int, form: int) -> bytes | None:
    """``value`` as msgpack fixint (form 0) or uint 8/16/32/64; None if it does not fit."""
    if form == 0:
        return bytes([value]) if value < 0x80 else None
    size = (1, 2, 4, 8)[form - 1]
    if value >= 1 << (8 * size):
        return None
    return _UINT_FORMS[form] + value.to_bytes(size, "big")


@given(
    kind=st.sampled_from([FrameKind.POLL, FrameKind.REPLY]),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    form=st.integers(min_value=0, max_value=4),
    cut=st.integers(min_value=1, max_value=8),
    trace=st.booleans(),
)
def test_a_lone_keepalive_frame_takes_the_fast_path_with_the_general_paths_outcome(
    kind: FrameKind, seq: int, form: int, cut: int, trace: bool
) -> None:
    """A POLL or REPLY read whole (the fast path) leaves the connection as the same
    bytes read in two pieces (the decoder): same events, same answer, same timer."""
    payload = _uint(seq, form)
    if payload is None:
        return
    frame = encode_frame(kind, payload)
    options = AddpOptions.addp(1.0, trace=TraceMode.LOCAL if trace else TraceMode.OFF)
    ends = []
    for pieces in ([frame], [frame[:cut], frame[cut:]]):
        a, _b, _, _ = open_pair(options, AddpOptions.addp(1.0))
        a.keepalive.handle_timeout(1.0)  # a poll of seq 1 out, so a REPLY may answer it
        a.data_to_send()
        events = [e for piece in pieces for e in a.receive_data(piece, 1.5)]
        stats = a.keepalive.statistics()
        ends.append((events, a.data_to_send(), a.keepalive.state, a.next_deadline(), stats))
    assert ends[0] == ends[1]
    if kind is FrameKind.POLL:
        assert ends[0][1] == encode_frame(FrameKind.REPLY, payload)


@given(
    value=st.one_of(st.integers(0, 2**64 - 1), st.integers(-(2**63), -1), st.booleans()),
    kind=st.integers(0, 7),
    where=st.integers(0, 16),
    byte=st.integers(0, 255),
    tail=st.binary(max_size=3),
)
def test_the_fast_path_takes_only_what_the_decoder_reads_as_one_keepalive_frame(
    value: int, kind: int, where: int, byte: int, tail: bytes
) -> None:
    """A frame of any kind around any int-like payload, one byte replaced, maybe more
    bytes behind: whatever the fast path takes, the decoder reads as that one frame."""
    data = bytearray(encode_frame(FrameKind.POLL, encode_payload(value)) + tail)
    data[2] = kind
    if where < len(data):
        data[where] = byte
    found = keepalive_frame(bytes(data))
    if found is None:
        return
    frames = FrameDecoder().feed(bytes(data))
    assert len(frames) == 1
    got_kind, payload = frames[0]
    assert (got_kind, decode_payload(payload)) == found
    assert got_kind in (FrameKind.POLL, FrameKind.REPLY)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(conn: Connection, pieces: list[bytes]) -> tuple[object, ...]:
    """Feed ``pieces`` (one: whole, the fast path's shape; more: the decoder's), and
    say what came of it: the events or the error's type, and the state after."""
    try:
        events: object = [e for piece in pieces for e in conn.receive_data(piece, 1.5)]
    except RemoteProtocolError as exc:
        events = type(exc)
    return (
        events,
        conn.state,
        conn.take_message_sizes(),
        conn.data_to_send(),
        conn.next_deadline(),
        conn.keepalive.statistics(),
    )


@given(
    value=_VALUES,
    where=st.none() | st.integers(0, 40),
    byte=st.integers(0, 255),
    tail=st.binary(max_size=3),
    cut=st.integers(min_value=1, max_value=8),
    limit=st.sampled_from([None, 8, 16, 4096]),
)
@example(value="x" * 40, where=None, byte=0, tail=b"", cut=3, limit=16)  # over the limit
@example(value="x", where=8, byte=0xC1, tail=b"", cut=3, limit=None)  # not msgpack
def test_a_lone_message_frame_read_whole_ends_as_the_decoder_would_have_it(
    value: object, where: int | None, byte: int, tail: bytes, cut: int, limit: int | None
) -> None:
    """A MESSAGE frame (one byte maybe replaced, maybe more bytes behind it) read in
    one piece (the fast path, where it is exactly one frame) leaves the connection as
    the same bytes read in two pieces (the decoder) do: the same message or the same
    error, state, sizes, answer and deadlines; and the fast path takes only frames
    the decoder reads as that one MESSAGE."""
    data = bytearray(encode_frame(FrameKind.MESSAGE, encode_payload(value)) + tail)
    if where is not None and where < len(data):
        data[where] = byte
    whole = bytes(data)
    ends = []
    for pieces in ([whole], [whole[:cut], whole[cut:]]):
        a, _b, _, _ = open_pair(AddpOptions.addp(1.0), AddpOptions.addp(1.0))
        if limit is not None:
            a._decoder.max_frame_size = limit  # a peer held to an unauthenticated limit
        ends.append(_outcome(a, pieces))
    assert ends[0] == ends[1]
    if single_message(whole, limit or FrameDecoder().max_frame_size):
        (frame,) = FrameDecoder().feed(whole)
        assert frame[0] is FrameKind.MESSAGE
