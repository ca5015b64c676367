"""``confserv -s <section> -c <file>``: the command line of the Configuration Server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
    typer.echo(f"confserv: the server is not implemented yet (section {section}, file {config})")
    sys.exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
