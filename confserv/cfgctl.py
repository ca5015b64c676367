"""``cfgctl``: read and change the configuration, and control servers, from a shell."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version of cfgctl."""
    typer.echo("cfgctl 0.1.0")


def main() -> None:
    """Console-script entry point."""
    app()
