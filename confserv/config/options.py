"""The options the seed makes the operator keep equal on the primary and the backup.

The seed: the backup's options must be the same as the primary's, log options
aside. When a backup connects to its primary's change stream, it sends
:func:`effective_options` of its own file; the primary compares them with its
own and answers with its own, so that both raise alarm 20173 naming every
option that differs. Ports, names, listen and advertise addresses are per
server and not compared, and neither is the database's host and port (each
server may reach the same database by its own route: a local pooler, a
relay); nor ``[log]``; secrets are never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .settings import ServerSettings


def effective_options(settings: ServerSettings) -> dict[str, str]:
    """``section option -> value`` of everything both servers of a pair must share."""
    addp = settings.addp
    out = {
        "server encryption": str(settings.encryption).lower(),
        "server tls-client-certificates": settings.tls.client_certificates,
        "server encoding": settings.encoding,
        "server protocol": "addp" if addp.enabled else "default",
        "server addp-timeout": f"{addp.timeout:g}",
        "server addp-remote-timeout": f"{addp.remote_timeout:g}",
        "server addp-trace": str(addp.trace.value),
        "server lease-ttl": f"{settings.lease_ttl:g}",
        "server lease-renew": f"{settings.lease_renew:g}",
        "server resume-ticket-ttl": f"{settings.resume_ticket_ttl:g}",
        "server max-frame-size": str(settings.max_frame_size),
        "server max-object-size": str(settings.max_object_size),  # security helper A
        "server no-default-access": str(settings.no_default_access).lower(),
        "history-log expiration": str(settings.history.expiration_days),
        "history-log max-records": str(settings.history.max_records),
        "history-log audit-expiration": str(settings.history.audit_expiration_days),
        "history-log audit-max-records": str(settings.history.audit_max_records),
    }
    db = settings.db
    if db is not None:
        out |= {
            "database dbengine": db.engine,
            "database dbname": db.dbname,
            "database username": db.username,
            "database reconnect-timeout": f"{db.reconnect_timeout:g}",
            "database response-timeout": f"{db.response_timeout:g}",
        }
    return out


def options_diff(mine: Mapping[str, str], theirs: Any) -> str | None:
    """``option: here X, there Y; ...`` for every difference, or None when equal
    (``theirs`` comes off the wire: anything that is not a map of strings differs)."""
    if not isinstance(theirs, Mapping):
        return "the peer sent no options to compare"
    parts = []
    for key in sorted(set(mine) | set(theirs)):
        here, there = mine.get(key), theirs.get(key)
        if here != there:
            parts.append(
                f"[{key.split(' ', 1)[0]}] {key.split(' ', 1)[-1]}: here {here!r}, there {there!r}"
            )
    return "; ".join(parts) if parts else None
