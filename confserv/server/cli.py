"""``confserv -s <section> -c <file>``: the command line of the Configuration Server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import trio
import typer

from confserv.config.settings import ConfigError, load_server_settings

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def serve(
    section: Annotated[
        str, typer.Option("-s", "--section", help="The server's section in the file.")
    ] = "confserv",
    config: Annotated[Path, typer.Option("-c", "--config", help="The configuration file.")] = Path(
        "confserv.conf"
    ),
) -> None:
    """Run a Configuration Server from SECTION of the configuration file."""
    try:
        settings = load_server_settings(config, section)
    except ConfigError as exc:
        print(f"confserv: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from .app import main as run

    raise SystemExit(trio.run(run, settings))


def main() -> None:
    """Console-script entry point."""
    app()
