"""The two listeners of a server or proxy: the client port and the management port.

Both speak TLS when the server's section says ``encryption = true``
(``settings.tls.server``): the TLS handshake must finish within ``auth-timeout``
and counts against the port's caps meanwhile (:func:`addp.transport.serve`).
"""

from __future__ import annotations

import trio

import addp
import addp.transport
from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.http import probe
from confserv.http.metrics import ServerMetrics
from confserv.http.probe import Reply
from confserv.http.server import serve_http
from confserv.logs import events
from confserv.logs.eventlog import EventLog

from .clients import ClientSession
from .management import ManagementSession, PairHooks
from .refusals import StartRefusedError

#: The most management connections open at once (supervisors, a backup, proxies,
#: cfgctl); the excess is refused with a CLOSE naming the cap.
MANAGEMENT_MAX_CONNECTIONS = 256
#: The most of them not authenticated yet.
MANAGEMENT_MAX_UNAUTHENTICATED = 64


async def flush_log_summaries(log: EventLog) -> None:
    """Write the rate limiter's summaries once per interval, so that a burst of
    repeated alarms that stopped is told without waiting for the next line."""
    while True:
        await trio.sleep(log.limiter.interval)
        log.flush_summaries()


async def serve_ports(
    rt: Runtime,
    settings: ServerSettings,
    nursery: trio.Nursery,
    pair: PairHooks | None = None,
) -> dict[str, int]:
    """Start the client and management listeners; returns the ports they got.

    Raises:
        StartRefusedError: a port cannot be bound (in use, or an address this
            host does not have), for a master and a proxy alike: one line, exit 2.
    """
    try:
        return await _serve_ports(rt, settings, nursery, pair)
    except OSError as exc:
        ports = f"port {settings.port}"
        for extra in (settings.management_port, settings.http_port):
            if extra is not None:
                ports += f" or {extra}"
        raise StartRefusedError(
            f"cannot listen on {settings.listen_address} {ports}: {exc.strerror or exc} "
            "(is another process using it?)"
        ) from None


async def _serve_ports(
    rt: Runtime,
    settings: ServerSettings,
    nursery: trio.Nursery,
    pair: PairHooks | None,
) -> dict[str, int]:

    async def client(link: addp.transport.Link) -> None:
        await ClientSession(link, rt).run()

    async def management(link: addp.transport.Link) -> None:
        session = ManagementSession(
            link, rt, settings.management_secret, pair, auth_timeout=settings.auth_timeout
        )
        await session.run()

    host = settings.listen_address
    nursery.start_soon(flush_log_summaries, rt.log)
    # Bounds of the client port: a client must register within auth-timeout and
    # sends small frames until then; at most max-connections (max-unauthenticated
    # of them not registered yet) at once, the excess refused with a CLOSE.
    rt.service.max_object_size = settings.max_object_size  # refused before commit when over
    listeners = await nursery.start(
        lambda task_status: addp.transport.serve(
            client,
            settings.port,
            settings.addp,
            host=host,
            task_status=task_status,
            max_frame_size=settings.max_frame_size,
            auth_timeout=settings.auth_timeout,
            max_connections=settings.max_connections,
            max_unauthenticated=settings.max_unauthenticated,
            ssl_context=settings.tls.server,  # None: plain TCP
        )
    )
    ports = {"port": listeners[0].socket.getsockname()[1]}
    rt.log.emit(events.LISTENING, what="clients", host=host, port=ports["port"])
    management_port = settings.management_port
    if management_port is not None:
        listeners = await nursery.start(
            lambda task_status: addp.transport.serve(
                management,
                management_port,
                settings.addp,
                host=host,
                task_status=task_status,
                max_connections=MANAGEMENT_MAX_CONNECTIONS,
                max_unauthenticated=MANAGEMENT_MAX_UNAUTHENTICATED,
                # Behind the session's own deadline (its message names the scheme):
                # counts the connection as unauthenticated, frames of 64 KiB until then.
                auth_timeout=settings.auth_timeout + 1.0,
                ssl_context=settings.tls.server,
            )
        )
        ports["management_port"] = listeners[0].socket.getsockname()[1]
        rt.log.emit(events.LISTENING, what="management", host=host, port=ports["management_port"])
    if settings.http_port is not None:
        ports["http_port"] = await serve_probes(rt, settings.http_port, host, nursery)
    return ports


async def serve_probes(rt: Runtime, port: int, host: str, nursery: trio.Nursery) -> int:
    """The health and metrics port (``http-port``): /primary, /backup, /health, /metrics."""
    metrics = ServerMetrics(rt)

    def handler(method: str, target: str) -> Reply:
        return probe.answer(method, target, rt.status(), metrics.text)

    def refused(peer: str, why: str) -> None:
        rt.log.emit(events.HTTP_REFUSED, peer=peer, reason=why)

    listeners = await nursery.start(
        lambda task_status: serve_http(
            handler, port, host=host, refused=refused, task_status=task_status
        )
    )
    bound: int = listeners[0].socket.getsockname()[1]
    rt.log.emit(events.HTTP_LISTENING, host=host, port=bound)
    return bound
