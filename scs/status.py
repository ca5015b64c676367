"""A server's management ``status`` answer, parsed at the edge into a typed value (pure).

The supervisor's core never sees a wire dict: :func:`parse_status` turns the
fields of a ``status`` answer, a ``watch`` answer or a role push
(``docs/protocol.md``, management port) into a :class:`ServerStatus`, and
refuses a malformed one with :class:`MalformedStatus`, one line naming the
field. Fields the supervisor does not use are ignored; a field that is absent
(or ``null``) is ``None``: "not said".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class MalformedStatus(ValueError):
    """A status answer the supervisor cannot use: not a map, or a field of the wrong type."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What the supervisor uses of a server's status (``None``: not said).

    Attributes:
        role: ``"starting"``, ``"primary"``, ``"backup"`` or ``"proxy"`` (any
            other non-empty string is kept as said: a newer server may have more).
        epoch: the epoch of its lease while primary, else the last it saw.
        serial: the last serial it applied.
        pid: its process id (a pid of 0 or less is "not said").
        lease_ttl: its ``lease-ttl`` in seconds (positive and finite, else not said).
        engine: its database engine, ``"sqlite"`` or ``"postgre"``.
    """

    role: str | None = None
    epoch: int | None = None
    serial: int | None = None
    pid: int | None = None
    lease_ttl: float | None = None
    engine: str | None = None


def parse_status(fields: object) -> ServerStatus:
    """The :class:`ServerStatus` in ``fields`` (a decoded ``status`` answer or role push).

    Raises :class:`MalformedStatus` when ``fields`` is not a map or a field the
    supervisor uses has the wrong type (a bool is not a number).
    """
    if not isinstance(fields, Mapping):
        raise MalformedStatus(f"a status is a map, not {_kind(fields)}")
    pid = _integer(fields, "pid")
    ttl = _number(fields, "lease_ttl")
    return ServerStatus(
        role=_text(fields, "role"),
        epoch=_integer(fields, "epoch"),
        serial=_integer(fields, "serial"),
        pid=pid if pid is not None and pid > 0 else None,
        lease_ttl=ttl if ttl is not None and math.isfinite(ttl) and ttl > 0 else None,
        engine=_text(fields, "engine"),
    )


def _integer(fields: Mapping[str, Any], key: str) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedStatus(f"status field {key!r} is {value!r} ({_kind(value)}), not an integer")
    return value


def _number(fields: Mapping[str, Any], key: str) -> float | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedStatus(f"status field {key!r} is {value!r} ({_kind(value)}), not a number")
    return float(value)


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedStatus(f"status field {key!r} is {value!r} ({_kind(value)}), not a string")
    return value or None


def _kind(value: object) -> str:
    return type(value).__name__
