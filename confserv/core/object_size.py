"""The size limit of an object: a write too large to reach any peer is refused before commit.

Every committed change travels in one ADDP frame to the backup, the proxies
and the subscribed clients. A change that encodes past their frame limit
could never be delivered: the backup would reconnect for ever and stay
behind. So the object after a write, and the change itself, must each encode
to at most ``max-object-size`` bytes (kept below ``max-frame-size`` with room
for the message around it). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from addp import encode_payload
from confserv.config.bounds import DEFAULT_MAX_OBJECT_SIZE
from confserv.logs.peer_text import peer_repr
from confserv.wire.errors import BadRequestError

__all__ = ["DEFAULT_MAX_OBJECT_SIZE", "ObjectTooLargeError", "check_write_size"]


class SizedWrite(Protocol):
    """What the check reads of a write (:class:`confserv.store.base.Write`): its
    type, the whole object and the change's data."""

    @property
    def type(self) -> str: ...

    @property
    def obj(self) -> Mapping[str, Any] | None: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


W = TypeVar("W", bound=SizedWrite)


class ObjectTooLargeError(BadRequestError):
    """A write whose object, or change, encodes larger than ``max-object-size``
    (code ``bad-request``: the request must be made smaller)."""


def check_write_size(write: W, limit: int) -> W:
    """``write`` itself when its object and its change each encode to at most
    ``limit`` bytes.

    Raises:
        ObjectTooLargeError: naming the type, the object and both sizes.
    """
    for what, value in (("object", write.obj), ("change", write.data)):
        if value is None:
            continue
        size = len(encode_payload(value))
        if size > limit:
            name = (write.obj or {}).get("name") or write.data.get("name") or "?"
            raise ObjectTooLargeError(
                f"{write.type} {peer_repr(name)}: the {what} encodes to {size} bytes, over "
                f"max-object-size ({limit} bytes); make it smaller (fewer or shorter options)"
            )
    return write
