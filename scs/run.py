"""``scs -f FILE`` itself: the supervisor run until a signal, with its ports and views.

Kept apart from :mod:`scs.cli` so that the operator commands (``scs status``,
``scs history``) start without importing the supervisor. The ports of ``[scs]``
are bound before any server is started (one that cannot be is one line,
:class:`ListenRefusedError`); the event log goes to stderr (above the live
table on a terminal) and to ``[scs] log-file`` (``scs events``); every
failover's story to ``<state-dir>/failovers.jsonl`` (``scs history``).
SIGHUP stops as SIGTERM does: closing the terminal leaves nothing orphaned.
"""

from __future__ import annotations

import io
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, cast

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from confserv.http.server import serve_http
from confserv.logs.eventlog import EventLog
from confserv.logs.handlers import file_handler
from confserv.logs.systemd import notify, take_notify_socket
from confserv.wire.errors import first_in_group

from . import events
from .config import ScsSettings
from .control import serve_control
from .history_file import HISTORY_NAME, HistoryFile
from .metrics import SupervisorMetrics
from .render import status_table, supervisor_title
from .supervisor import Supervisor

__all__ = ["ListenRefusedError", "serve_metrics", "supervise"]


async def supervise(settings: ScsSettings, json_log: bool, name: str | None = None) -> None:
    """Supervise until SIGINT, SIGTERM or SIGHUP (see the module docstring)."""
    live_view = sys.stdout.isatty() and not json_log
    console = Console(stderr=False)
    log = EventLog(
        "scs",
        cast("TextIO", _Stderr()) if live_view else sys.stderr,
        verbose=settings.verbose,
        json_lines=json_log,
        color=sys.stderr.isatty() and not json_log,
    )
    if settings.log_file is not None:  # scs events, from another shell; logrotate-safe
        log.add_handler(
            file_handler(
                settings.log_file,
                json_lines=json_log,
                segment=settings.log_segment,
                expire=settings.log_expire,
            )
        )
    history = HistoryFile(settings.state_dir / HISTORY_NAME, settings.history_max)
    log.observers.append(history.observe)  # scs history: every failover's story
    notify_socket = take_notify_socket()  # the servers it starts must not answer for it
    sup = Supervisor(settings, log, name=name)
    # SIGHUP (the terminal closed) stops as SIGTERM does: nothing is left orphaned.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            # The ports first: one that cannot be bound is one line, before any server
            # was started (it used to be a traceback of 160-200 lines, servers stopping).
            if settings.control_port is not None:
                await _listen(nursery, serve_control, sup, "control-port", settings.control_port)
            if settings.http_port is not None:
                await _listen(nursery, serve_metrics, sup, "http-port", settings.http_port)
            await nursery.start(sup.run)
            notify(
                "READY=1", where=notify_socket
            )  # Type=notify: its ports listen, its servers are being started
            if live_view:
                nursery.start_soon(_live, sup, console)
            async for signum in signals:
                then = (
                    "stopping its servers"
                    if settings.on_stop == "stop-servers" and sup.acting
                    else "leaving its servers running (on-stop = leave-running, or standby)"
                )
                log.emit(events.STOPPING, reason=signal.Signals(signum).name, then=then)
                nursery.cancel_scope.cancel()
                break


class ListenRefusedError(Exception):
    """A port of ``[scs]`` cannot be bound: one line, exit 2."""


async def _listen(
    nursery: trio.Nursery,
    serve: Callable[..., Awaitable[None]],
    sup: Supervisor,
    option: str,
    port: int,
) -> None:
    try:
        await nursery.start(serve, sup)
    except BaseException as caught:  # (the listener's own nursery wraps it in a group)
        exc = first_in_group(caught, OSError)
        if not isinstance(exc, OSError):
            raise
        where = sup.settings.http_address if option == "http-port" else "127.0.0.1"
        raise ListenRefusedError(
            f"cannot listen on {where}:{port} ([scs] {option}): {exc.strerror or exc} "
            "(another scs on this host, or another program, has it: stop that or pick "
            "another port)"
        ) from None


class _Stderr(io.TextIOBase):
    """``sys.stderr`` as it is at each write: inside rich's ``Live``, its proxy."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.__stderr__ is not None and sys.__stderr__.isatty()


async def serve_metrics(
    sup: Supervisor, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """``[scs] http-port``: /metrics and /status until cancelled; the port to ``task_status``."""
    settings = sup.settings
    wanted = settings.http_port
    assert wanted is not None
    metrics = SupervisorMetrics(sup)

    def refused(peer: str, why: str) -> None:
        sup.log.emit(events.HTTP_REFUSED, peer=peer, reason=why)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_http(
                metrics.answer,
                wanted,
                host=settings.http_address,
                refused=refused,
                task_status=task_status,
            )
        )
        port: int = listeners[0].socket.getsockname()[1]
        sup.log.emit(events.HTTP_LISTENING, host=settings.http_address, port=port)
        task_status.started(port)


async def _live(sup: Supervisor, console: Console) -> None:
    interval = sup.settings.status_interval
    # The event log's lines go through Live's stderr proxy (when stderr is this terminal
    # too), printed above the table instead of under it, where each refresh erased them.
    redirect = sys.stderr.isatty()
    with Live(_table(sup), console=console, refresh_per_second=4, redirect_stderr=redirect) as live:
        while True:
            with trio.move_on_after(interval):
                await sup.changed.wait()
            live.update(_table(sup))


def _table(sup: Supervisor) -> Table:
    return status_table(sup.snapshot(trio.current_time()), title=supervisor_title(sup.describe()))
