"""``confserv -s <section> -c <file>``: the command line of the Configuration Server.

``confserv --version`` and ``--help`` import typer only: the settings, trio and
the server are imported when it runs (tests/confserv/test_cli_imports.py).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from confserv.config.cli_version import version_option

if TYPE_CHECKING:
    from confserv.config.settings import ServerSettings
    from confserv.logs.eventlog import EventLog

    from .app import ProcessSeams

PROG = "confserv"
app = typer.Typer(
    help="confserv -s SECTION -c FILE: run a Configuration Server (docs/configuration.md).",
    rich_markup_mode=None,
)


VersionOpt = Annotated[bool, version_option(PROG)]


@app.command()
def serve(
    section: Annotated[
        str, typer.Option("-s", "--section", help="The server's section in the file.")
    ] = "confserv",
    config: Annotated[Path, typer.Option("-c", "--config", help="The configuration file.")] = Path(
        "confserv.conf"
    ),
    version: VersionOpt = False,
) -> None:
    """Run a Configuration Server from SECTION of the configuration file."""
    settings = _settings(config, section, sys.stderr)
    if settings is None:
        raise SystemExit(2) from None
    import trio

    from .app import main as run

    raise SystemExit(trio.run(run, settings))


def _settings(config: Path, section: str, err: TextIO) -> ServerSettings | None:
    """The settings, or None after printing the one line that says what is wrong."""
    from confserv.config.settings import ConfigError, load_server_settings

    try:
        return load_server_settings(config, section)
    except ConfigError as exc:
        print(f"confserv: {exc}", file=err)
        return None


async def run_command(
    argv: Sequence[str],
    until_stopped: Callable[[], Awaitable[str]],
    *,
    log: Callable[[ServerSettings], EventLog],
    seams: ProcessSeams,
    err: TextIO,
) -> int:
    """``confserv`` run in-process (a simulation): ``argv`` as the command line takes it
    (``argv[0]`` is the program), the same exit codes, no signal handlers, no
    ``sys.exit``. ``until_stopped`` returns why it must stop (for the real
    process, a signal); ``log`` makes the event log from the settings."""
    from .app import run_process

    command = typer.main.get_command(app)
    try:
        with command.make_context("confserv", list(argv[1:])) as ctx:
            section, config = str(ctx.params["section"]), Path(ctx.params["config"])
    except (typer.TyperException, typer.Exit, typer.Abort) as exc:
        print(f"confserv: {exc}", file=err)
        return 2
    settings = _settings(config, section, err)
    if settings is None:
        return 2
    return await run_process(settings, log(settings), until_stopped, seams=seams, err=err)


def main() -> None:
    """Console-script entry point."""
    app()
