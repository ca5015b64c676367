"""``--version`` for the command lines (confserv, cfgctl, scs): the installed package's.

(The host agent, ``lca``, has its own copy: it imports nothing of confserv.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def _show(prog: str) -> Callable[[bool], None]:
    def show(wanted: bool) -> None:
        if wanted:
            import importlib.metadata  # (here: 20 ms a start that does not ask for it)

            print(f"{prog} {importlib.metadata.version('cfgha')}")
            raise typer.Exit()

    return show


def version_option(prog: str) -> Any:
    """The ``--version`` option of ``prog``: prints ``prog <version>`` and exits."""
    return typer.Option(
        "--version", is_eager=True, callback=_show(prog), help="Show the version and exit."
    )
