"""``scs -f <scs.conf>``: the Solution Control Server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def run(
    file: Annotated[Path, typer.Option("-f", "--file", help="The scs.conf file.")] = Path(
        "scs.conf"
    ),
) -> None:
    """Supervise the servers the file describes."""
    typer.echo(f"scs: the supervisor is not implemented yet; it will read {file}", err=True)
    sys.exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
