"""``cfgctl``'s commands of a server's management port: status, promote, demote, reload
(:data:`COMMANDS`, registered after the others by :mod:`confserv.admin.cfgctl`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import TLS, console, fail, run, servers
from .cli_common import secret as read_secret
from .cli_options import JsonOpt, SecretFileOpt, SecretOpt, ServerOpt
from .secret_input import SECRET


def status(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a server's management port for its role, epoch, serial, pid and uptime."""
    sec = read_secret(SECRET, secret, secret_file)
    [(host, port)] = servers(server, one=True)

    async def go() -> None:
        answer = await _management_status(host, port, sec)
        if as_json:
            print(json.dumps(answer, sort_keys=True))
            return
        from rich.table import Table

        table = Table(title=f"{host}:{port}")
        table.add_column("field")
        table.add_column("value")
        for key, value in answer.items():
            table.add_row(key, str(value))
        console().print(table)

    run(go)


async def _management_status(host: str, port: int, secret: str) -> dict[str, Any]:
    """The management ``status`` answer of the server at host:port."""
    from confserv.client.session import open_management

    async with open_management(host, port, secret, tls=TLS["client"]) as m:
        answer = await m.status()
    return {k: v for k, v in answer.items() if k not in ("re", "ok")}


def _management_command(
    server: str,
    secret: tuple[str | None, Path | None],
    as_json: bool,
    command: str,
    force: bool = False,
    yes: bool = False,
) -> None:
    sec = read_secret(SECRET, *secret)
    [(host, port)] = servers(server, one=True)
    if force and not yes:
        _confirm_force(host, port, sec)

    async def go() -> None:
        from confserv.client.session import open_management

        async with open_management(host, port, sec, tls=TLS["client"]) as m:
            if command == "promote":
                answer = await m.switch_to_primary(force=force)
            elif command == "reload":
                answer = await m.reload()
            else:
                answer = await m.switch_to_backup()
        answer = {k: v for k, v in answer.items() if k not in ("re", "ok")}
        if as_json:
            print(json.dumps(answer, sort_keys=True))
        elif command == "reload":
            print(f"reloaded: {answer['objects']} objects, serial {answer['serial']}")
        else:
            print(
                f"{answer['name']}: {answer['role']} at epoch {answer['epoch']}, "
                f"serial {answer['serial']}"
            )

    run(go)


def _on_a_terminal() -> bool:
    """Whether there is someone to ask: standard input is a terminal."""
    return sys.stdin.isatty()


def _confirm_force(host: str, port: int, secret: str) -> None:
    """Ask (or refuse, exit 2) when the target's primary answered recently (force_check)."""
    from .force_check import recent_primary

    found: list[dict[str, Any]] = []

    async def go() -> None:
        found.append(await _management_status(host, port, secret))

    run(go)
    recent = recent_primary(found[0])
    if recent is None:
        return
    if not _on_a_terminal():
        fail(recent.refusal(), 2)
    print(recent.question(), end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if answer.strip().lower() != "yes":
        fail("promote --force: not confirmed; nothing was changed")


def promote(
    server: ServerOpt = "127.0.0.1:2131",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Take the lease at once: only with proof the primary is dead (asks first "
            "while the primary answered recently).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before --force (for scripts).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Switch the server at HOST:MANAGEMENT_PORT to primary."""
    _management_command(server, (secret, secret_file), as_json, "promote", force, yes)


def demote(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Planned hand-over: the primary at HOST:MANAGEMENT_PORT becomes backup."""
    _management_command(server, (secret, secret_file), as_json, "demote")


def reload(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reload the server at HOST:MANAGEMENT_PORT from its database (after alarm 20170:
    the database went back or was replaced); it serves and writes again."""
    _management_command(server, (secret, secret_file), as_json, "reload")


#: The commands, in the order help lists them.
COMMANDS = (status, promote, demote, reload)
