"""What ``cfgctl``'s commands share: the typer app, its global options (TLS,
``--version``), one-line failures, running a trio call, and the client.

Imports here are light (typer, and the option tables); each command imports
what it needs when it runs (tests/confserv/test_cli_imports.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from confserv.config.cli_version import version_option

from .secret_input import SecretInputError, SecretKind, resolve
from .tls_options import (
    TlsCaOpt,
    TlsCertificateOpt,
    TlsKeyOpt,
    TlsOpt,
    TlsServerNameOpt,
    client_tls,
)

if TYPE_CHECKING:
    from rich.console import Console

    from confserv.client.session import Address
    from confserv.wire.tls import ClientTls

HELP = """cfgctl: read and change the configuration, and control servers, from a shell.

Tables for people, --json for scripts. Errors are one line on stderr and exit
status 1 (2 for a bad command line or configuration file)."""

PROG = "cfgctl"
app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


VersionOpt = Annotated[bool, version_option(PROG)]


def console() -> Console:
    """The rich console of tables (rich is imported by the commands that print one)."""
    from rich.console import Console

    return Console()


#: The TLS the options before the command asked for (None: plain TCP).
TLS: dict[str, ClientTls | None] = {"client": None}


@app.callback()
def _options(
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_certificate: TlsCertificateOpt = None,
    tls_private_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
    version: VersionOpt = False,
) -> None:
    """Options of every command (TLS: see confserv.admin.tls_options)."""
    try:
        TLS["client"] = client_tls(tls, tls_ca, tls_certificate, tls_private_key, tls_server_name)
    except ValueError as exc:
        fail(str(exc), 2)


def fail(message: str, code: int = 1) -> NoReturn:
    """``cfgctl: MESSAGE`` on stderr, and exit with ``code``."""
    print(f"cfgctl: {message}", file=sys.stderr)
    raise SystemExit(code)


def run(fn: Callable[[], Awaitable[None]]) -> None:
    """``trio.run(fn)``; a connection or server error is one line and exit status 1."""
    import trio

    from confserv.wire.errors import ConfServError

    try:
        trio.run(fn)
    except ConfServError as exc:
        fail(str(exc))
    except BrokenPipeError:
        reader_gone()
    except OSError as exc:
        fail(f"cannot connect: {exc}")
    except ValueError as exc:
        fail(str(exc), 2)


def reader_gone() -> None:
    """Whoever read our output has stopped (``cfgctl export | head``): no error, as
    ``cat`` would; stdout goes to /dev/null so the interpreter's last flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def secret(kind: SecretKind, given: str | None, file: Path | None, *, confirm: bool = False) -> str:
    """The password or secret from a file, the command line, the environment or a prompt."""
    try:
        return resolve(kind, given, file, confirm=confirm)
    except SecretInputError as exc:
        fail(str(exc), 2)


def servers(server: str, *, one: bool = False) -> list[Address]:
    """``--server``'s addresses (exit 2 with one line when it is not HOST:PORT[,...])."""
    from confserv.client.session import parse_servers

    try:
        servers = parse_servers(server)
    except ValueError as exc:
        fail(f"--server: {exc} (give one HOST:MANAGEMENT_PORT)" if one else f"--server: {exc}", 2)
    if one and len(servers) != 1:
        fail("--server: give one HOST:MANAGEMENT_PORT", 2)
    return servers


def client(server: str, user: str, password: str) -> Any:
    """``open_client`` to ``--server`` as ``user`` (an async context manager)."""
    from confserv.client.session import open_client

    return open_client(
        servers(server),
        app="cfgctl",
        app_type="cfgctl",
        user=user,
        password=password,
        tls=TLS["client"],
    )


def checked(check: Callable[[], Any]) -> Any:
    """``check()``; a bad type, field or value is one line and exit status 2."""
    from confserv.wire.errors import FieldValueError, UnknownFieldError, UnknownTypeError

    from .views import ViewError

    try:
        return check()
    except (ViewError, UnknownTypeError, UnknownFieldError, FieldValueError) as exc:
        fail(str(exc), 2)
