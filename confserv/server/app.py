"""Run one Configuration Server: open the database, take the role, serve both ports.

The trio structure: one nursery holding the client listener, the management
listener, the pair driver (lease and role, see :mod:`confserv.ha.pair`) and the
history trimmer. Everything below it is in
:mod:`confserv.server.clients`, :mod:`confserv.server.management` and :mod:`confserv.core.service`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from confserv.config.options import effective_options
from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.core.service import ConfigService
from confserv.ha.dbwatch import DatabaseWatch
from confserv.ha.membership import resolve_membership
from confserv.ha.pair import PairDriver
from confserv.logs import events
from confserv.logs.eventlog import EventLog
from confserv.logs.systemd import notify
from confserv.store.base import ConfigStore, Holder
from confserv.store.engines import open_store
from confserv.store.instance import Instance
from confserv.wire.errors import (
    DatabaseIdentityError,
    InstanceClaimedError,
    MembershipError,
    PromotionRefusedError,
    RequestError,
    UnavailableError,
    first_in_group,
)

from .management import supervisor_fence
from .ports import serve_ports
from .refusals import StartFailedError, StartRefusedError
from .resumption import ticket_key

#: Seconds between History Log clean-ups (Genesys: every 30 minutes).
HISTORY_TRIM_INTERVAL = 1800.0


def make_log(settings: ServerSettings) -> EventLog:
    """The server's event log, with ADDP trace lines routed into it."""
    own = settings.log
    log = EventLog.from_settings(
        settings.section,
        own.verbose,
        own.all,
        json_lines=own.format == "json",
        segment=own.segment,
        expire=own.expire,
    )
    trace = logging.getLogger("addp.trace")
    trace.handlers[:] = [log.handler(events.ADDP_TRACE)]
    trace.setLevel(logging.INFO)
    trace.propagate = False
    links = logging.getLogger("addp")  # links that ended: protocol errors, timeouts
    links.handlers[:] = [log.handler(events.BAD_PEER)]
    links.setLevel(logging.INFO)
    links.propagate = False
    driver = logging.getLogger("asyncpg")  # the pool's reconnect attempts: one line each
    driver.handlers[:] = [log.handler(events.DB_ERROR, field="reason", traceback=False)]
    driver.setLevel(logging.WARNING)
    driver.propagate = False
    return log


async def trim_history(rt: Runtime, store: ConfigStore, settings: ServerSettings) -> None:
    """Remove history older than ``[history-log] expiration`` days, now and every 30 min."""
    days = settings.history.expiration_days
    while True:
        try:
            count = await store.trim_history(days * 86400.0)
            rt.log.emit(events.HISTORY_TRIMMED, count=count, days=days)
        except RequestError as exc:
            rt.log.emit(events.DB_ERROR, reason=f"history clean-up failed: {exc}")
        await trio.sleep(HISTORY_TRIM_INTERVAL)


@dataclass(frozen=True, slots=True)
class ProcessSeams:
    """What a server run in-process (a simulation) takes from its host instead of the OS.

    The defaults are the real process's: this process's instance, its pid, a
    frozen garbage collector after loading. (Its database and network come from
    :func:`confserv.store.engines.use_store_opener` and
    :func:`addp.transport.use_network`.)
    """

    #: This process's instance, from its client and management ports.
    instance: Callable[[int, int], Instance] = Instance.this_process
    #: The pid a status answer gives (None: this process's).
    pid: int | None = None
    #: ``gc.freeze()`` once the configuration is loaded (a process of its own only:
    #: many servers in one process would freeze each other's garbage).
    freeze_gc: bool = True


#: The seams of a real ``confserv`` process.
REAL_PROCESS = ProcessSeams()


async def run_server(
    settings: ServerSettings,
    *,
    log: EventLog | None = None,
    stop: Callable[[str], None] | None = None,
    seams: ProcessSeams = REAL_PROCESS,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a master-mode server until cancelled (``stop`` ends the process with a
    reason: another process took this one's claim).

    ``task_status.started`` receives ``{"port": ..., "management_port": ...,
    "runtime": Runtime}`` once both ports listen (ports may be 0 in tests).

    Raises:
        StartRefusedError: the database is missing, empty, foreign or of another
            schema; the section names no member of the database's pair; or
            another process of the same Application runs.
    """
    assert settings.db is not None, "master mode needs a database section"
    log = log or make_log(settings)
    try:
        async with open_store(settings.db) as store:
            await _serve_master(settings, store, log, stop, seams, task_status)
    except BaseException as exc:
        refusal = first_in_group(exc, _REFUSALS)
        if refusal is not None:
            raise StartRefusedError(str(refusal)) from None
        failure = first_in_group(exc, UnavailableError)
        if failure is not None:
            raise StartFailedError(
                f"stopped: the database failed: {failure} (exit 1: the supervisor restarts it)"
            ) from None
        raise


#: Reasons not to start (exit 2), wherever they are inside a group.
_REFUSALS = (DatabaseIdentityError, MembershipError, InstanceClaimedError, StartRefusedError)


async def _serve_master(
    settings: ServerSettings,
    store: ConfigStore,
    log: EventLog,
    stop: Callable[[str], None] | None,
    seams: ProcessSeams,
    task_status: trio.TaskStatus[dict[str, Any]],
) -> None:
    identity = await store.identity()  # never creates a schema: cfgctl init does
    service = ConfigService(store, history_limit=settings.history.max_records)
    service.log_auth_with(log.emit)  # the login back-off's and rehash's events
    started = time.perf_counter()
    await service.reload()
    membership = resolve_membership(settings.section, service.read("Application"), settings.pair)
    holder = Holder(settings.section, seams.instance(settings.port, settings.management_port or 0))
    try:
        if seams.freeze_gc:
            gc.freeze()  # the loaded configuration lives on: keep it out of every full collection
        log.emit(
            events.LOADED,
            count=len(service),
            serial=service.last_serial,
            seconds=time.perf_counter() - started,
        )
        if next(service.read("Person"), None) is None:
            log.emit(events.NO_ADMIN)
        rt = Runtime(
            name=settings.section,
            pair=membership.pair,
            service=service,
            log=log,
            pid=holder.instance.pid,
        )
        rt.lease_ttl, rt.engine, rt.stop = settings.lease_ttl, store.engine, stop
        rt.options = effective_options(settings)
        rt.tickets = ticket_key(identity.resume_key, identity.uuid)
        rt.ticket_ttl = settings.resume_ticket_ttl
        if rt.tickets is None and settings.resume_ticket_ttl > 0:
            log.emit(events.NO_RESUME_KEY)
        # The newest supervisor epoch is the database's (issue 14): a restarted server
        # refuses a deposed supervisor's commands as its peer does.
        supervisors = await store.read_supervisor_lease()
        if supervisors is not None:
            supervisor_fence(rt).observe(supervisors.epoch)

        def reloading(why: str) -> None:
            log.emit(events.APPLY_FAILED, reason=why)

        service.on_reload = reloading
        log.emit(
            events.STARTED,
            name=settings.section,
            pid=rt.pid,
            engine=store.engine,
            db=settings.db.dbname if settings.db else "",
        )
        log.emit(
            events.PAIR_MEMBERSHIP,
            primary=membership.primary,
            backup=f"'{membership.backup}'" if membership.backup else "none",
            app="primary" if membership.app == membership.primary else "backup",
            instance=holder.instance.id,
        )
        async with trio.open_nursery() as nursery:
            hooks = _LateHooks()
            ports = await serve_ports(rt, settings, nursery, hooks)
            # Claimed only once the ports are ours: a copy started on the same ports
            # must not take the claim of a stopped original (make chaos, seed 416).
            await store.claim(holder, settings.lease_ttl)
            address = advertised_address(settings, ports)
            driver = PairDriver(rt, store, settings, address, holder)
            hooks.driver = driver
            watch = DatabaseWatch(
                rt, store, identity, lambda: rt.role == "primary" and driver.machine.writable
            )
            rt.reload = watch.reload
            await nursery.start(driver.run)
            nursery.start_soon(watch.run, settings.lease_renew)
            nursery.start_soon(trim_history, rt, store, settings)
            notify("READY=1")  # Type=notify: its ports listen, its role is being settled
            task_status.started({**ports, "runtime": rt, "driver": driver})
    finally:
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(2),
            contextlib.suppress(RequestError),
        ):
            await store.release_claim(holder)  # a restart need not wait for it


def advertised_address(settings: ServerSettings, ports: dict[str, Any]) -> str:
    """``host:port:management-port`` written in the lease: where others reach this server.

    The ``advertise-*`` options win over what the server listens on (a server
    behind NAT, a load balancer or a relay); a wildcard listen address is
    replaced by the host name.
    """
    host = settings.advertise_host or settings.listen_address
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    port = settings.advertise_port or ports["port"]
    management_port = settings.advertise_management_port or ports.get("management_port", 0)
    return f"{host}:{port}:{management_port}"


class _LateHooks:
    """The management port's pair hooks, bound once the driver exists (after the ports)."""

    driver: PairDriver | None = None

    async def promote(self, force: bool, over: int | None = None) -> dict[str, Any]:
        return await self._ready().promote(force, over)

    async def demote(self, force: bool = False) -> dict[str, Any]:
        return await self._ready().demote(force)

    def _ready(self) -> PairDriver:
        """The driver; a role command in the moment between the ports and the driver
        is refused with an answer, not an assertion (found by make chaos, PostgreSQL:
        a ``switch-to-primary`` to a server still starting ended its link with a
        traceback)."""
        if self.driver is None:
            raise PromotionRefusedError("the server is still starting: ask again in a moment")
        return self.driver

    def peer_ack(self) -> None:
        if self.driver is not None:
            self.driver.peer_ack()


def _raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: ``max-connections``
    (2000 by default) exceeds the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(settings: ServerSettings) -> int:
    """Entry point of the ``confserv`` process: run until SIGTERM or SIGINT.

    Returns the exit code: 0 after a signal, 2 when the server must not run (the
    reason is printed as one line on stderr)."""
    _raise_open_file_limit()
    try:
        log = make_log(settings)
    except OSError as exc:
        print(
            f"confserv: [log] all: cannot open the log file {settings.log.all}: "
            f"{exc.strerror or exc} (create its folder, fix the path, or use stderr)",
            file=sys.stderr,
        )
        return 2
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:

        async def signalled() -> str:
            async for signum in signals:
                if signum == signal.SIGHUP:  # logrotate's postrotate: the files reopen
                    log.emit(events.LOG_REOPENED, count=log.reopen())
                    continue
                return signal.Signals(signum).name
            raise AssertionError("the signal receiver ended")  # pragma: no cover

        return await run_process(settings, log, signalled)


async def run_process(
    settings: ServerSettings,
    log: EventLog,
    until_stopped: Callable[[], Awaitable[str]],
    *,
    seams: ProcessSeams = REAL_PROCESS,
    err: TextIO | None = None,
) -> int:
    """Run the server (or proxy) of ``settings`` until ``until_stopped`` returns why it
    must stop (:func:`main`: a signal's name); the exit code, as :func:`main`.

    Without signal handlers or ``sys.exit``, so that a simulation can run many
    server processes in one (``seams``); the one line of a refusal goes to
    ``err`` (stderr by default).
    """
    refused: list[str] = []
    failed: list[str] = []
    async with trio.open_nursery() as nursery:

        async def server() -> None:
            try:
                if settings.mode == "proxy":
                    await _run_proxy(settings, log, seams)
                else:
                    await run_server(settings, log=log, stop=stop, seams=seams)
            except BaseException as exc:  # a proxy's refusal comes inside its nursery's group
                if (refusal := first_in_group(exc, StartRefusedError)) is not None:
                    refused.append(str(refusal))
                elif (failure := first_in_group(exc, StartFailedError)) is not None:
                    failed.append(str(failure))
                else:
                    raise
            nursery.cancel_scope.cancel()

        def stop(reason: str) -> None:
            refused.append(reason)
            nursery.cancel_scope.cancel()

        nursery.start_soon(server)
        reason = await until_stopped()
        log.emit(events.STOPPING, name=settings.section, reason=reason)
        nursery.cancel_scope.cancel()
    if refused:
        print(f"confserv: [{settings.section}] {refused[0]}", file=err or sys.stderr)
        return 2
    if failed:
        print(f"confserv: [{settings.section}] {failed[0]}", file=err or sys.stderr)
        return 1
    return 0


async def _run_proxy(settings: ServerSettings, log: EventLog, seams: ProcessSeams) -> None:
    from .proxy import run_proxy

    if seams.pid is None:
        await run_proxy(settings, log=log)
        return
    async with trio.open_nursery() as nursery:
        started = await nursery.start(
            lambda task_status: run_proxy(settings, log=log, task_status=task_status)
        )
        started["runtime"].pid = seams.pid
