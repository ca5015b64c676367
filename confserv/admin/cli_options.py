"""The options cfgctl's commands share: server, user, password, secret, output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ServerOpt = Annotated[
    str, typer.Option("--server", "-S", help="HOST:PORT[,HOST:PORT] of the server(s).")
]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="The Person to log in as.")]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        "-p",
        help="Password: every user can see it in the process list; prefer CFG_PASSWORD, "
        "--password-file or the prompt.",
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option("--password-file", help="Read the password from the first line of FILE."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
SecretOpt = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="Management secret: every user can see it in the process list; prefer "
        "CFG_SECRET, --secret-file or the prompt.",
    ),
]
SecretFileOpt = Annotated[
    Path | None,
    typer.Option("--secret-file", help="Read the management secret from the first line of FILE."),
]
