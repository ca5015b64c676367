"""The fast generator: ADDP frames and requests from ``random.Random``, for a million cases.

:class:`Mutator` builds a request from its shape (:mod:`tests.fuzz.shapes`)
and mutates it; :func:`frame_case` wraps payloads in frames and mutates the
framing itself (bad magic, kind, flags, an oversized or zero length, a frame
cut short, bytes that are not msgpack, extension types, frames out of order);
:func:`raw_case` is random bytes. Everything is seeded: the same seed gives
the same cases. Strings over a few KiB come from a cache (building 4 MiB of
text per case would cost more than sending it).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from addp import MAGIC, FrameKind, encode_frame, encode_payload

from . import shapes

MiB = 1 << 20
#: Sizes of the huge strings: under and over the 64 KiB limit before authentication,
#: about 1 MiB, and just under and over the 4 MiB frame limit.
HUGE_SIZES = (5_000, 70_000, 1 * MiB, 4 * MiB - 200, 4 * MiB + 16)
_HUGE = {n: "h" * n for n in HUGE_SIZES}
#: The HELLO a well-behaved client sends (every option at its default).
GOOD_HELLO_PAYLOAD: dict[str, Any] = {
    "versions": [1, 1],
    "remote-timeout": 0,
    "remote-trace": False,
    "max-frame-size": 4 * MiB,
    "app": None,
}
GOOD_HELLO = encode_frame(FrameKind.HELLO, encode_payload(GOOD_HELLO_PAYLOAD))


def message_frame(value: Any) -> bytes:
    """One MESSAGE frame carrying ``value``."""
    return encode_frame(FrameKind.MESSAGE, encode_payload(value))


def raw_frame(kind: int, payload: bytes, flags: int = 0, length: int | None = None) -> bytes:
    """A frame with any header fields (for headers :func:`addp.encode_frame` would not write)."""
    size = len(payload) if length is None else length
    return struct.pack(">2sBBI", MAGIC, kind, flags, size) + payload


def deep(depth: int, leaf: Any = 1, as_map: bool = False) -> Any:
    """``leaf`` inside ``depth`` one-element lists (or maps)."""
    value = leaf
    for _ in range(depth):
        value = {"k": value} if as_map else [value]
    return value


def deep_bytes(depth: int) -> bytes:
    """msgpack of a ``depth``-deep list, written directly (no Python recursion)."""
    return b"\x91" * depth + b"\x01"


def _protected(type_name: Any) -> bool:
    return isinstance(type_name, str) and type_name in shapes.PROTECTED_TYPES


@dataclass(frozen=True, slots=True)
class Case:
    """One fuzz case: the bytes to send on a fresh connection, and whether a HELLO goes first."""

    generator: str
    data: bytes
    hello: bool = True


class Mutator:
    """Requests of the given shapes, mutated; all randomness from ``rng``."""

    def __init__(self, rng: random.Random, fatal: bool = True) -> None:
        self.rng = rng
        #: Whether values that end a connection may be drawn (nesting deeper than the
        #: limit, strings over the frame limit); a session's batches leave them out.
        self.fatal = fatal

    # -- values --------------------------------------------------------------------------

    def scalar(self) -> Any:
        """Any msgpack scalar, including the awkward ones."""
        r = self.rng
        return r.choice(
            (
                None,
                True,
                False,
                0,
                -1,
                1.5,
                float("nan"),
                2**63,
                2**64 - 1,
                -(2**63),
                b"\x00\xff",
                "",
                " ",
                r.choice(shapes.NASTY_STRINGS),
                r.randrange(-(2**31), 2**31),
                "".join(chr(r.randrange(32, 0x2FFF)) for _ in range(r.randrange(1, 12))),
            )
        )

    def huge(self) -> str:
        """A huge string (its size from :data:`HUGE_SIZES`)."""
        sizes = HUGE_SIZES if self.fatal else HUGE_SIZES[:2]
        return _HUGE[self.rng.choice(sizes)]

    def wrong(self) -> Any:
        """A value of a surprising kind: a scalar, a container, deep nesting, a huge string."""
        r = self.rng.random()
        if r < 0.55:
            return self.scalar()
        if r < 0.7:
            return [self.scalar() for _ in range(self.rng.randrange(0, 4))]
        if r < 0.8:
            return {self.scalar_key(): self.scalar() for _ in range(self.rng.randrange(0, 4))}
        if r < 0.9:
            depths = (5, 30, 33, 200) if self.fatal else (5, 29)
            return deep(self.rng.choice(depths), as_map=self.rng.random() < 0.3)
        return self.huge()

    def scalar_key(self) -> Any:
        """A map key: usually a string, sometimes an int, nil or bytes."""
        if self.rng.random() < 0.8:
            return self.rng.choice(("k", "name", "", "op", "id", *shapes.NASTY_STRINGS))
        return self.rng.choice((0, -1, None, b"k", 2**64 - 1, True))

    def hex32(self) -> str:
        """32 lowercase hex digits, or a near miss."""
        good = f"{self.rng.getrandbits(128):032x}"
        return self.rng.choice((good, good, good.upper(), good[:-1], good + "0", "g" * 32))

    def valid(self, kind: str) -> Any:
        """A value of argument kind ``kind`` that is right in type (not always in meaning)."""
        r = self.rng
        if kind == "str":
            return r.choice(("fuzz", "nobody", "", "x" * r.randrange(1, 300), *shapes.NAME_POOL))
        if kind == "int":
            return r.choice((0, 1, -1, r.randrange(0, 1000), 2**63 - 1))
        if kind == "bool":
            return r.random() < 0.5
        if kind == "dbid":
            return r.choice((None, 0, -3, 1, 2, 3, r.randrange(1, 50), shapes.FAR_DBID + 1))
        if kind == "type":
            return r.choice((*shapes.TYPES, "Nope", ""))
        if kind == "object":
            return self.obj(r.choice(list(shapes.TYPES)))
        if kind == "delta":
            fields = {**shapes.COMMON_FIELDS, **shapes.TYPES[r.choice(list(shapes.TYPES))]}
            keys = r.sample(list(fields), r.randrange(0, 3))
            delta = {k: self.field(k, fields[k]) for k in keys}
            if "name" in delta:
                delta["name"] = r.choice(shapes.NAME_POOL)
            return delta
        if kind == "options":
            return {
                r.choice(("s", "", "log", "x" * 40)): r.choice(
                    (None, {"k": "v"}, {"k": None}, {"": "v"}, {"k": 3}, "notamap", {})
                )
                for _ in range(r.randrange(0, 3))
            }
        if kind == "filter":
            return r.choice(({}, {"name": r.choice(shapes.NAME_POOL)}, {"dbid": 1}, {"state": "x"}))
        if kind == "hex32":
            return self.hex32()
        if kind == "scheme":
            return r.choice(shapes.SCHEMES)
        if kind == "name":
            return r.choice(shapes.NAMES)
        raise ValueError(f"no argument kind {kind!r}")

    def field(self, name: str, kind: str) -> Any:
        """A field's value: mostly valid, sometimes wrong."""
        return self.wrong() if self.rng.random() < 0.2 else self.valid(kind)

    def obj(self, type_name: str) -> dict[Any, Any]:
        """A new object's map of ``type_name``: a pooled name, some fields, maybe wrong."""
        r = self.rng
        fields = {**shapes.COMMON_FIELDS, **shapes.TYPES[type_name]}
        out: dict[Any, Any] = {"name": r.choice(shapes.NAME_POOL)}
        for key in r.sample(list(fields), r.randrange(0, len(fields))):
            if key != "name":
                out[key] = self.field(key, fields[key])
        if r.random() < 0.3:
            out["options"] = {"s": {"k": r.choice(("v", *shapes.NASTY_STRINGS))}}
        if r.random() < 0.1:
            out[r.choice(("nofield", "password_hash", "dbid", "type"))] = self.scalar()
        return out

    # -- requests ------------------------------------------------------------------------

    def request(self, table: Mapping[str, Mapping[str, str]]) -> Any:
        """A request of one of ``table``'s operations (or an unknown one), mutated."""
        r = self.rng
        roll = r.random()
        if roll < 0.03:
            return self.wrong()  # not a map at all
        op: Any = r.choice(list(table)) if roll < 0.92 else r.choice(shapes.UNKNOWN_OPS)
        msg: dict[Any, Any] = {"op": op, "id": r.randrange(1, 1 << 31)}
        args = table.get(op, {}) if isinstance(op, str) else {}
        for name, kind in args.items():
            if r.random() < 0.85:
                msg[name] = self.valid(kind)
        if op in ("update", "delete") and _protected(msg.get("type")):
            msg["dbid"] = shapes.FAR_DBID + r.randrange(1000)
        m = r.random()
        if m < 0.35 and args:  # one argument of the wrong kind
            msg[r.choice(list(args))] = self.wrong()
        elif m < 0.45:
            msg["id"] = r.choice((None, "1", 1.0, True, -1, 2**64 - 1, [1]))
        elif m < 0.5:
            del msg["id"]
        elif m < 0.55:
            msg["op"] = self.wrong()
        elif m < 0.62:
            msg[self.scalar_key()] = self.wrong()  # an extra key
        return msg

    def not_of(self, kind: str) -> Any:
        """A :meth:`wrong` value that is surely not of argument kind ``kind``."""
        checks: dict[str, Callable[[Any], bool]] = {
            "bool": lambda v: isinstance(v, bool),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "object": lambda v: isinstance(v, dict),
        }
        while True:
            value = self.wrong()
            if not checks[kind](value):
                return value

    def authed_request(self, port: str, table: Mapping[str, Mapping[str, str]]) -> Any:
        """A request for an authenticated management or control connection: a reading
        operation with any arguments, or an acting one refused for a wrong argument."""
        safe = shapes.AUTHED_SAFE[port]
        guarded = shapes.AUTHED_GUARDED[port]
        ops = [*safe, *guarded]
        msg = self.request({op: table.get(op, {}) for op in ops})
        op = msg.get("op") if isinstance(msg, dict) else None
        if isinstance(op, str) and op in guarded:
            name, kind = guarded[op]
            msg[name] = self.not_of(kind)
        return msg

    def hello(self) -> Any:
        """A HELLO payload, mostly with one field wrong."""
        r = self.rng
        value: dict[Any, Any] = dict(GOOD_HELLO_PAYLOAD)
        key = r.choice(("versions", "remote-timeout", "remote-trace", "max-frame-size", "app"))
        value[key] = r.choice(
            (
                self.wrong(),
                [2, 1],
                [0, 0],
                [1, 9],
                -1,
                3_600_001,
                0,
                1023,
                2**32,
                {"role": "client"},
            )
        )
        if r.random() < 0.1:
            del value[key]
        return value if r.random() < 0.97 else self.wrong()


#: msgpack bytes that are not one valid value, or carry refused extension types.
BAD_MSGPACK = (
    b"",
    b"\xc1",  # never used
    b"\x92\x01",  # an array cut short
    b"\xd9\x10abc",  # a str cut short
    b"\x01\x02",  # two values
    b"\xd6\xff\x00\x00\x00\x01",  # timestamp
    b"\xc7\x03\x05abc",  # ext 5
    msgpack.packb({"op": "status", "id": 1}) + b"\x00",  # trailing byte
)


def frame_case(rng: random.Random, mutator: Mutator, payload: Callable[[], Any]) -> Case:
    """A case that breaks the framing around (or before) a request from ``payload``."""
    body = encode_payload(payload())
    pick = rng.randrange(14)
    if pick == 0:
        data = raw_frame(FrameKind.MESSAGE, body, flags=rng.randrange(1, 256))
    elif pick == 1:
        data = raw_frame(rng.choice((0, 6, 7, 0x7F, 0xFF)), body)
    elif pick == 2:  # a length over every limit, and a few bytes of the payload
        data = raw_frame(
            FrameKind.MESSAGE, body[:16], length=rng.choice((65537, 4 * MiB + 1, 2**32 - 1))
        )
    elif pick == 3:
        data = raw_frame(FrameKind.MESSAGE, b"")
    elif pick == 4:  # cut short: the peer vanishes mid-frame
        whole = message_frame(payload())
        data = whole[: rng.randrange(1, len(whole))]
    elif pick == 5:
        data = raw_frame(FrameKind.MESSAGE, rng.choice(BAD_MSGPACK))
    elif pick == 6:  # a MESSAGE before the HELLO
        return Case("frames", message_frame(payload()), hello=False)
    elif pick == 7:  # a second HELLO
        data = GOOD_HELLO + message_frame(payload())
    elif pick == 8:  # a bad HELLO instead of the good one
        return Case(
            "frames", encode_frame(FrameKind.HELLO, encode_payload(mutator.hello())), hello=False
        )
    elif pick == 9:  # polls and replies nobody asked for, with odd payloads
        kind = rng.choice((FrameKind.POLL, FrameKind.REPLY))
        data = encode_frame(kind, encode_payload(mutator.scalar())) + message_frame(payload())
    elif pick == 10:  # a CLOSE with a strange reason, then more
        reason = rng.choice(({"reason": mutator.wrong()}, mutator.wrong(), {}))
        data = encode_frame(FrameKind.CLOSE, encode_payload(reason)) + message_frame(payload())
    elif pick == 11:  # many small frames back to back
        data = b"".join(message_frame(payload()) for _ in range(rng.randrange(2, 20)))
    elif pick == 12:  # a deep payload written as bytes (deeper than any recursion limit)
        data = raw_frame(
            FrameKind.MESSAGE,
            b"\x82\xa2op\xa4read\xa2id\x01" + deep_bytes(rng.choice((33, 1000, 100_000))),
        )
    else:  # a good frame followed by garbage in the same write
        data = message_frame(payload()) + rng.randbytes(rng.randrange(1, 64))
    return Case("frames", data)


def raw_case(rng: random.Random) -> Case:
    """Random bytes: with or without a HELLO first, sometimes starting like a header."""
    n = rng.choice((1, 2, 7, 8, 9, 64, 512, 4096))
    data = rng.randbytes(n)
    roll = rng.random()
    if roll < 0.3:
        data = MAGIC + data
    elif roll < 0.4:
        data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    return Case("random", data, hello=rng.random() < 0.5)


def request_case(
    rng: random.Random, mutator: Mutator, table: Mapping[str, Mapping[str, str]]
) -> Case:
    """A few mutated requests on a fresh connection (before authentication)."""
    count = 1 if rng.random() < 0.7 else rng.randrange(2, 6)
    return Case("requests", b"".join(message_frame(mutator.request(table)) for _ in range(count)))
