"""``scs -f <scs.conf>``: the Solution Control Server, and its operator commands.

- ``scs -f FILE``: supervise (a live status view on a terminal; Ctrl-C stops
  every server it started). One supervisor per FILE on a host: a second one
  exits 2 naming the pid that holds the lock (:mod:`scs.lock`).
- ``scs status -f FILE [--json]``, ``scs switchover -f FILE PAIR``,
  ``scs pause -f FILE PAIR``, ``scs resume -f FILE PAIR``: ask a running
  supervisor through its control port (``[scs] control-port``/``control-secret``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from confserv.config.cli_version import version_option

from . import lock
from .logs_cli import register_log_commands

if TYPE_CHECKING:
    from .config import ScsSettings

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
    from confserv.config.settings import ConfigError  # (not for --help nor --version)

    from .config import load_scs_settings

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
    import trio  # (here: the operator commands start without the supervisor's imports)

    from confserv.store.leases import SupervisorNameTakenError
    from confserv.wire.errors import first_in_group

    from .run import ListenRefusedError, supervise

    try:
        trio.run(supervise, settings, json_log or settings.log_format == "json", name)
    except BaseException as exc:
        refusal = first_in_group(exc, (SupervisorNameTakenError, ListenRefusedError, OSError))
        if refusal is None:
            raise
        if isinstance(refusal, OSError) and not _is_log_file_error(refusal, settings):
            raise
        print(f"scs: {refusal}", file=sys.stderr)
        raise SystemExit(2) from None


def _is_log_file_error(exc: OSError, settings: ScsSettings) -> bool:
    """Whether ``exc`` is ``[scs] log-file`` that cannot be opened (then one line)."""
    if settings.log_file is None or exc.filename is None:
        return False
    if Path(exc.filename) != settings.log_file:
        return False
    exc.strerror = (
        f"[scs] log-file: cannot open it: {exc.strerror} (fix the path or its folder's "
        "rights, or set log-file = false)"
    )
    return True


def _hold_lock(file: Path) -> int:
    """One supervisor per scs.conf on this host: exit 2 with one line if one runs."""
    try:
        return lock.hold(file)
    except lock.AlreadySupervised as exc:
        print(f"scs: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"scs: cannot take the lock for {file}: {exc}", file=sys.stderr)
    raise SystemExit(2)


async def _ask(settings: ScsSettings, op: str, **args: Any) -> dict[str, Any]:
    from confserv.client.session import open_control
    from confserv.wire.errors import ConfServError

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
    import trio

    from confserv.wire.errors import ConfServError

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
        from rich.console import Console

        from .render import status_table, supervisor_title

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
    import trio

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
    import trio

    from confserv.wire.errors import ConfServError

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


register_log_commands(app, _load)


def main() -> None:
    """Console-script entry point."""
    app()
