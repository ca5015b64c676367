"""``scs -f <scs.conf>``: the Solution Control Server, and its operator commands.

- ``scs -f FILE``: supervise (a live status view on a terminal; Ctrl-C stops
  every server it started). One supervisor per FILE on a host: a second one
  exits 2 naming the pid that holds the lock (:mod:`scs.lock`).
- ``scs status -f FILE [--json]``, ``scs switchover -f FILE PAIR``,
  ``scs pause -f FILE PAIR``, ``scs resume -f FILE PAIR``: ask a running
  supervisor through its control port (``[scs] control-port``/``control-secret``).
"""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar, cast

import trio
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from confserv.client.session import open_control
from confserv.config.cli_version import version_option
from confserv.config.settings import ConfigError
from confserv.http.server import serve_http
from confserv.logs.eventlog import EventLog
from confserv.logs.systemd import notify, take_notify_socket
from confserv.store.leases import SupervisorNameTakenError
from confserv.wire.errors import ConfServError, first_in_group

from . import events, lock
from .config import ScsSettings, load_scs_settings
from .control import serve_control
from .metrics import SupervisorMetrics
from .render import status_table, supervisor_title
from .supervisor import Supervisor

HELP = """scs -f FILE: the Solution Control Server, and its operator commands.

scs -f FILE supervises the servers FILE (scs.conf) describes: a live status view
on a terminal; Ctrl-C, SIGTERM or SIGHUP stops it (and, with on-stop =
stop-servers, every server it runs). One supervisor per FILE on a host. The
commands ask a running supervisor through its control port ([scs] control-port
and control-secret). Options and keys: docs/configuration.md."""

PROG = "scs"
app = typer.Typer(help=HELP, invoke_without_command=True, rich_markup_mode=None)
FileOpt = Annotated[Path | None, typer.Option("-f", "--file", help="The scs.conf file.")]


VersionOpt = Annotated[bool, version_option(PROG)]


def _load(file: Path | None) -> ScsSettings:
    if file is None:
        print("scs: give the configuration file with -f <scs.conf>", file=sys.stderr)
        raise SystemExit(2)
    try:
        return load_scs_settings(file)
    except ConfigError as exc:
        print(f"scs: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@app.callback()
def main_command(
    ctx: typer.Context,
    file: FileOpt = None,
    json_log: Annotated[bool, typer.Option("--json-log", help="Log as JSON lines.")] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="This supervisor's name among the installation's (default: the host name).",
        ),
    ] = None,
    version: VersionOpt = False,
) -> None:
    """Supervise the servers FILE describes (when no command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _load(file)
    _hold_lock(settings.file)  # held until this process ends (the kernel releases it)
    try:
        trio.run(_supervise, settings, json_log or settings.log_format == "json", name)
    except BaseException as exc:
        refusal = first_in_group(exc, (SupervisorNameTakenError, ListenRefusedError))
        if refusal is None:
            raise
        print(f"scs: {refusal}", file=sys.stderr)
        raise SystemExit(2) from None


def _hold_lock(file: Path) -> int:
    """One supervisor per scs.conf on this host: exit 2 with one line if one runs."""
    try:
        return lock.hold(file)
    except lock.AlreadySupervised as exc:
        print(f"scs: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"scs: cannot take the lock for {file}: {exc}", file=sys.stderr)
    raise SystemExit(2)


async def _supervise(settings: ScsSettings, json_log: bool, name: str | None = None) -> None:
    live_view = sys.stdout.isatty() and not json_log
    console = Console(stderr=False)
    log = EventLog(
        "scs",
        cast("TextIO", _Stderr()) if live_view else sys.stderr,
        verbose=settings.verbose,
        json_lines=json_log,
        color=sys.stderr.isatty() and not json_log,
    )
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


async def _ask(settings: ScsSettings, op: str, **args: Any) -> dict[str, Any]:
    if settings.control_port is None or settings.control_secret is None:
        raise ConfServError(f"{settings.file}: [scs] has no control-port/control-secret")
    async with open_control(
        settings.control_port, settings.control_secret, tls=settings.control_tls
    ) as m:
        answer: dict[str, Any] = await m.session.request(op, **args)
        return answer


def _run_ask(settings: ScsSettings, op: str, **args: Any) -> dict[str, Any]:
    return _run_async(lambda: _ask(settings, op, **args))


_T = TypeVar("_T")


def _run_async(run: Callable[[], Awaitable[_T]]) -> _T:
    """``trio.run(run)``; a control port that cannot be reached or refuses is one
    line and exit 1."""
    try:
        return trio.run(run)
    except OSError as exc:
        print(f"scs: cannot reach the supervisor's control port: {exc}", file=sys.stderr)
    except ConfServError as exc:
        print(f"scs: {exc}", file=sys.stderr)
    raise SystemExit(1)


@app.command()
def status(
    file: FileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
    wait_healthy: Annotated[
        bool,
        typer.Option(
            "--wait-healthy",
            help="Wait until every pair is whole; exit 0 healthy, 1 degraded, 2 no primary.",
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait-healthy waits.")] = 60.0,
) -> None:
    """Each server: section, pair, role, epoch, process id, state."""
    if wait_healthy:
        _wait_healthy(_load(file), timeout)
    answer = _run_ask(_load(file), "status")
    supervisor = answer.get("supervisor") or {}
    if as_json:
        print(json.dumps({"supervisor": supervisor, "servers": answer["servers"]}, sort_keys=True))
    else:
        Console(width=None if sys.stdout.isatty() else 160).print(
            status_table(answer["servers"], title=supervisor_title(supervisor))
        )


@app.command()
def stop(server: Annotated[str, typer.Argument()], file: FileOpt = None) -> None:
    """Stop SERVER; it is not restarted until scs start SERVER."""
    _run_ask(_load(file), "stop", server=server)
    print(f"{server}: stopping (not restarted until 'scs start {server}')")


@app.command()
def start(server: Annotated[str, typer.Argument()], file: FileOpt = None) -> None:
    """Start SERVER again after scs stop SERVER (or clear the stop)."""
    _run_ask(_load(file), "start", server=server)
    print(f"{server}: starting")


@app.command()
def restart(
    server: Annotated[str, typer.Argument()],
    file: FileOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 60.0,
) -> None:
    """Stop SERVER, wait until it is down, start it again (a primary fails over first)."""
    settings = _load(file)

    async def run() -> str:
        await _ask(settings, "stop", server=server)
        with trio.move_on_after(timeout):
            while True:
                rows = {r["section"]: r for r in (await _ask(settings, "status"))["servers"]}
                if rows.get(server, {}).get("state") == "stopped":
                    await _ask(settings, "start", server=server)
                    return f"{server}: restarting"
                await trio.sleep(0.1)
        await _ask(settings, "start", server=server)  # do not leave it stopped
        return f"{server}: not down within {timeout:g} s; told to start anyway"

    print(_run_async(run))


HEALTH_EXIT = {"healthy": 0, "degraded": 1, "no primary": 2}


def health_of(rows: list[dict[str, Any]]) -> str:
    """``healthy`` (every pair one running primary and one running backup, every proxy
    running), ``no primary`` (some pair has no running primary), else ``degraded``."""
    pairs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("pair"):
            pairs.setdefault(str(row["pair"]), []).append(row)
    running = [r for r in rows if r.get("state") in ("running", "watched")]
    for members in pairs.values():
        if not any(r.get("role") == "primary" and r in running for r in members):
            return "no primary"
    for members in pairs.values():
        roles = sorted(str(r.get("role")) for r in members if r in running)
        if roles != ["backup", "primary"]:
            return "degraded"
    if any(r.get("kind") == "proxy" and r not in running for r in rows):
        return "degraded"
    return "healthy"


def _wait_healthy(settings: ScsSettings, timeout: float) -> None:
    why = ""

    async def run() -> str:
        nonlocal why
        health = "no primary"
        with trio.move_on_after(timeout):
            while True:
                try:  # a supervisor still starting has no control port yet: keep asking
                    health = health_of((await _ask(settings, "status"))["servers"])
                    why = ""
                except (OSError, ConfServError) as exc:
                    health, why = "no primary", f"the supervisor does not answer: {exc}"
                if health == "healthy":
                    break
                await trio.sleep(0.2)
        return health

    health = _run_async(run)
    if why:
        print(f"scs: {why}", file=sys.stderr)
    print(health)
    raise SystemExit(HEALTH_EXIT[health])


@app.command()
def switchover(pair: Annotated[str, typer.Argument()], file: FileOpt = None) -> None:
    """Planned switchover of PAIR: the backup takes over without a lost write."""
    answer = _run_ask(_load(file), "switchover", pair=pair)
    print(f"switchover of {pair}: {answer['result']}")


@app.command()
def pause(pair: Annotated[str, typer.Argument()], file: FileOpt = None) -> None:
    """No automatic action for PAIR until resumed."""
    _run_ask(_load(file), "pause", pair=pair)
    print(f"{pair}: paused")


@app.command()
def resume(pair: Annotated[str, typer.Argument()], file: FileOpt = None) -> None:
    """Automatic actions for PAIR again."""
    _run_ask(_load(file), "resume", pair=pair)
    print(f"{pair}: resumed")


def main() -> None:
    """Console-script entry point."""
    app()
