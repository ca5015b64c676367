"""Why a server or proxy process ends at start: refused (exit 2) or failed (exit 1).

Raised anywhere in the server package and turned into one line on stderr and
the exit code by :func:`confserv.server.app.run_process`.
"""

from __future__ import annotations

from confserv.wire.errors import ConfServError


class StartFailedError(ConfServError):
    """The server stopped for a reason that may pass (the database failed where the
    server cannot ride it out, e.g. while loading at start): one line, exit 1, and
    the supervisor restarts it."""


class StartRefusedError(ConfServError):
    """The server must not start (exit 2): its database, its Application or a running
    copy of it says so. ``str()`` is the one line to print."""
