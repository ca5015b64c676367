"""The Configuration Server's application messages (carried in ADDP MESSAGE frames).

Requests are maps ``{"op": <name>, "id": <int>, ...}``. Every request gets
exactly one final answer ``{"re": id, "ok": true, ...}`` or
``{"re": id, "ok": false, "code": <code>, "message": <text>}``; a read first
streams ``{"re": id, "objects": [...]}`` chunks. Notifications are
``{"notify": <change>}``; role pushes on the management port are
``{"push": "role", ...}``. ``docs/protocol.md`` lists every field.
"""

from __future__ import annotations

from typing import Any

from addp import peer_repr

from .errors import BackupModeError, BadRequestError, RequestError

#: Objects per streamed read chunk.
READ_CHUNK = 500

#: Client-port operations.
CLIENT_OPS = (
    "register",
    "read",
    "create",
    "update",
    "delete",
    "subscribe",
    "unsubscribe",
    "restore",
    "status",
)
#: Management-port operations.
MANAGEMENT_OPS = (
    "auth",
    "status",
    "switch-to-primary",
    "switch-to-backup",
    "watch",
    "replicate",
    "ack",
    "reload",
    "snapshot",
    "forward",
    "follow",
)


def ok(request_id: Any, **fields: Any) -> dict[str, Any]:
    """A success answer."""
    return {"re": request_id, "ok": True, **fields}


def error(request_id: Any, err: RequestError) -> dict[str, Any]:
    """A failure answer naming the error's code."""
    out: dict[str, Any] = {"re": request_id, "ok": False, "code": err.code, "message": str(err)}
    if isinstance(err, BackupModeError):
        if err.primary:
            out["primary"] = err.primary
        if err.primary_lost:
            out["primary_lost"] = True
    return out


def parse_request(msg: Any, ops: tuple[str, ...]) -> tuple[str, int]:
    """Return ``(op, id)`` of a request, or raise BadRequestError saying what is wrong."""
    if not isinstance(msg, dict):
        raise BadRequestError(f"a request must be a map, got {type(msg).__name__}")
    request_id = msg.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise BadRequestError("a request needs an integer 'id'")
    op = msg.get("op")
    if op not in ops:
        raise BadRequestError(f"unknown op {peer_repr(op)} (known: {', '.join(ops)})")
    return str(op), request_id


def arg(msg: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """Argument ``name`` of a request, checked against ``kind``."""
    if name not in msg:
        if default is ...:
            raise BadRequestError(f"missing argument {name!r}")
        return default
    value = msg[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadRequestError(f"argument {name!r} has the wrong type {type(value).__name__}")
    return value
