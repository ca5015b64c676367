"""What each HTTP path of a Configuration Server answers, from its state (pure).

- ``GET /primary``: 200 only while the server is a writable primary, else 503:
  a load balancer's health check (HAProxy ``option httpchk GET /primary``)
  routes clients to the primary alone. A TCP check cannot tell: a backup
  listens too, and refuses.
- ``GET /backup``: 200 only while it is a backup following the current primary.
- ``GET /health``: 200 while it runs, with its role, epoch and serial as JSON.
- ``GET /metrics``: the Prometheus text the caller made (:mod:`.metrics`).

Anything else is 404; a method other than GET or HEAD is 405. Every body but
the metrics is one JSON object, ending with a newline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Paths and what they are for (the 404's body lists them).
PATHS = ("/primary", "/backup", "/health", "/metrics")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, content type, body."""

    status: int
    content_type: str
    body: bytes


def _json(status: int, fields: Mapping[str, Any]) -> Reply:
    return Reply(status, JSON, (json.dumps(dict(fields), sort_keys=True) + "\n").encode())


def health_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    """What ``/health`` (and the role checks) show of a server's status."""
    keys = ("name", "pair", "role", "epoch", "serial", "writable", "following", "pid", "uptime")
    return {key: status.get(key) for key in keys}


def answer(
    method: str, path: str, status: Mapping[str, Any], metrics: Callable[[], tuple[bytes, str]]
) -> Reply:
    """The reply to ``method path`` for a server whose ``status`` (its management
    ``status`` fields, with ``following``) is given; ``metrics`` makes the
    Prometheus text and its content type on demand."""
    if method not in ("GET", "HEAD"):
        return _json(405, {"error": f"method {method} is not served: use GET"})
    path = path.split("?", 1)[0]
    fields = health_fields(status)
    if path == "/primary":
        up = fields["role"] == "primary" and fields["writable"] is True
        return _json(200 if up else 503, fields)
    if path == "/backup":
        up = fields["role"] == "backup" and bool(fields["following"])
        return _json(200 if up else 503, fields)
    if path == "/health":
        return _json(200, fields)
    if path == "/metrics":
        body, content_type = metrics()
        return Reply(200, content_type, body)
    return _json(404, {"error": f"no such path (paths: {', '.join(PATHS)})"})
