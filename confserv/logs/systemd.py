"""Telling a service manager (systemd, ``Type=notify``) that the process is ready.

The ``sd_notify`` protocol (``man sd_notify``): one datagram ``READY=1`` on the
UNIX socket named by ``$NOTIFY_SOCKET`` (an abstract one when it starts with
``@``). Without that variable nothing is sent, so the call costs nothing
outside systemd. The host agent (``lca``) has its own copy of these few lines:
it imports nothing of confserv.
"""

from __future__ import annotations

import os
import socket

#: The environment variable systemd sets for a ``Type=notify`` service.
NOTIFY_SOCKET = "NOTIFY_SOCKET"


def take_notify_socket() -> str | None:
    """``$NOTIFY_SOCKET``, removed from the environment: a process that starts others
    (the supervisor) keeps it to itself, so they do not answer for it."""
    return os.environ.pop(NOTIFY_SOCKET, None)


def notify(state: str, where: str | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``) to the service
    manager at ``where`` (default ``$NOTIFY_SOCKET``); whether there was one to tell
    (a failure to send is no error: readiness is advice, the service runs either way)."""
    where = where if where is not None else os.environ.get(NOTIFY_SOCKET)
    if not where:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True
