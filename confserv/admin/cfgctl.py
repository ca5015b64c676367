"""``cfgctl``: read and change the configuration, and control servers, from a shell.

Tables for people, ``--json`` for scripts. Errors are one line on stderr and
exit status 1 (2 for a bad command line or configuration file).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import trio
import typer
import yaml
from rich.console import Console
from rich.table import Table

from confserv.client.session import ConfigClient, open_client, open_management, parse_servers
from confserv.config.cli_version import version_option
from confserv.config.settings import ConfigError, load_server_settings
from confserv.model.passwords import COST_ENV, PasswordCostError, parse_cost, set_default_cost
from confserv.wire.errors import ConfServError
from confserv.wire.tls import ClientTls

from .cli_options import (
    JsonOpt,
    PasswordFileOpt,
    PasswordOpt,
    SecretFileOpt,
    SecretOpt,
    ServerOpt,
    UserOpt,
)
from .secret_input import ADMIN_PASSWORD, PASSWORD, SECRET, SecretInputError, SecretKind, resolve
from .tls_options import (
    TlsCaOpt,
    TlsCertificateOpt,
    TlsKeyOpt,
    TlsOpt,
    TlsServerNameOpt,
    client_tls,
)
from .transfer import canonical_type, export_all, import_all, parse_fields, parse_options

HELP = """cfgctl: read and change the configuration, and control servers, from a shell.

Tables for people, --json for scripts. Errors are one line on stderr and exit
status 1 (2 for a bad command line or configuration file)."""

PROG = "cfgctl"
app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


VersionOpt = Annotated[bool, version_option(PROG)]

console = Console()

#: The TLS the options before the command asked for (None: plain TCP).
_tls: dict[str, ClientTls | None] = {"client": None}


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
        _tls["client"] = client_tls(tls, tls_ca, tls_certificate, tls_private_key, tls_server_name)
    except ValueError as exc:
        _fail(str(exc), 2)


def _fail(message: str, code: int = 1) -> None:
    print(f"cfgctl: {message}", file=sys.stderr)
    raise SystemExit(code)


def _run(fn: Callable[[], Awaitable[None]]) -> None:
    try:
        trio.run(fn)
    except ConfServError as exc:
        _fail(str(exc))
    except BrokenPipeError:
        _reader_gone()
    except OSError as exc:
        _fail(f"cannot connect: {exc}")
    except ValueError as exc:
        _fail(str(exc), 2)


def _reader_gone() -> None:
    """Whoever read our output has stopped (``cfgctl export | head``): no error, as
    ``cat`` would; stdout goes to /dev/null so the interpreter's last flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def _secret(
    kind: SecretKind, given: str | None, file: Path | None, *, confirm: bool = False
) -> str:
    """The password or secret from a file, the command line, the environment or a prompt."""
    try:
        return resolve(kind, given, file, confirm=confirm)
    except SecretInputError as exc:
        _fail(str(exc), 2)
        raise  # unreachable: _fail exits


def _client(server: str, user: str, password: str) -> Any:
    try:
        servers = parse_servers(server)
    except ValueError as exc:
        _fail(f"--server: {exc}", 2)
    return open_client(
        servers, app="cfgctl", app_type="cfgctl", user=user, password=password, tls=_tls["client"]
    )


def _table(objects: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    columns = ["dbid", "name", "state"]
    extra = sorted({k for o in objects for k in o} - {*columns, "type", "options"})
    for col in [*columns, *extra, "options"]:
        table.add_column(col)
    for obj in objects:
        opts = "; ".join(
            f"{s}.{k}={v}" for s, kv in obj.get("options", {}).items() for k, v in kv.items()
        )
        table.add_row(*[str(obj.get(c, "")) for c in [*columns, *extra]], opts)
    return table


@app.command()
def init(
    section: Annotated[str, typer.Option("-s", "--section", help="Primary's section.")],
    config: Annotated[Path, typer.Option("-c", "--config", help="Primary's configuration file.")],
    backup_section: Annotated[str | None, typer.Option("--backup-section")] = None,
    backup_config: Annotated[Path | None, typer.Option("--backup-config")] = None,
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    password_cost: Annotated[
        str | None,
        typer.Option(
            "--password-cost",
            help="scrypt cost of the administrator's hash: 'owasp' (N=2^17,r=8,p=1, the "
            "default) or like 'n=2^16,r=8,p=2'; servers use CONFSERV_PASSWORD_COST.",
        ),
    ] = None,
) -> None:
    """Create the schema and the bootstrap objects in the database the file names."""
    try:
        cost = parse_cost(password_cost or os.environ.get(COST_ENV) or "owasp")
    except PasswordCostError as exc:
        source = "--password-cost" if password_cost else COST_ENV
        _fail(f"{source}: {exc}", 2)
        return
    set_default_cost(cost)
    admin_password = _secret(ADMIN_PASSWORD, password, password_file, confirm=True)
    try:
        primary = load_server_settings(config, section)
        backup = None
        if backup_section is not None:
            backup = load_server_settings(backup_config or config, backup_section)
    except ConfigError as exc:
        _fail(str(exc), 2)
        return
    if primary.db is None:
        _fail(f"[{section}] is a proxy; init needs a master's configuration", 2)

    async def go() -> None:
        # Only ``init`` needs the store (and SQLAlchemy): the other commands start without it.
        from .bootstrap import init_database

        report = await init_database(primary, backup, admin_password)
        for name in report.created:
            console.print(f"created  {name}")
        for name in report.existing:
            console.print(f"existing {name}")
        console.print(f"database {report.uuid}")

    _run(go)


@app.command()
def get(
    type_name: Annotated[str, typer.Argument(metavar="TYPE")],
    name: Annotated[str | None, typer.Argument()] = None,
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print objects of TYPE (all, or the one named NAME)."""
    pw = _secret(PASSWORD, password, password_file)

    async def go() -> None:
        kind = canonical_type(type_name)
        async with _client(server, user, pw) as c:
            objects = await c.read(kind, {"name": name} if name else None)
        if name and not objects:
            _fail(f"no {kind} named {name!r}")
        if as_json:
            print(json.dumps(objects, indent=2, sort_keys=True))
        else:
            console.print(_table(objects, kind))

    _run(go)


@app.command()
def put(
    type_name: Annotated[str, typer.Argument(metavar="TYPE")],
    name: Annotated[str, typer.Argument()],
    fields: Annotated[list[str] | None, typer.Argument(metavar="[FIELD=VALUE]...")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="section.key=value (empty deletes).")
    ] = None,
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create NAME, or update it with the given fields and options."""
    pw = _secret(PASSWORD, password, password_file)

    async def go() -> None:
        kind = canonical_type(type_name)
        values = parse_fields(kind, fields or [])
        options = parse_options(option or [])
        async with _client(server, user, pw) as c:
            existing = await c.get(kind, name)
            if existing is None:
                clean = {
                    s: {k: v for k, v in kv.items() if v is not None} for s, kv in options.items()
                }
                answer = await c.create(kind, {"name": name, **values, "options": clean})
                action = "created"
            else:
                answer = await c.update(kind, existing["dbid"], values, options)
                action = "updated"
        result = {
            "action": action,
            "type": kind,
            "name": name,
            **{k: answer[k] for k in ("dbid", "serial", "epoch")},
        }
        print(
            json.dumps(result)
            if as_json
            else f"{action} {kind} {name!r}: dbid {answer['dbid']}, serial {answer['serial']}"
        )

    _run(go)


@app.command()
def delete(
    type_name: Annotated[str, typer.Argument(metavar="TYPE")],
    name: Annotated[str, typer.Argument()],
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Delete the object of TYPE named NAME."""
    pw = _secret(PASSWORD, password, password_file)

    async def go() -> None:
        kind = canonical_type(type_name)
        async with _client(server, user, pw) as c:
            existing = await c.get(kind, name)
            if existing is None:
                _fail(f"no {kind} named {name!r}")
                return
            answer = await c.delete(kind, existing["dbid"])
        print(f"deleted {kind} {name!r}: serial {answer['serial']}")

    _run(go)


@app.command()
def watch(
    type_name: Annotated[str | None, typer.Argument(metavar="[TYPE]")] = None,
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    count: Annotated[
        int, typer.Option("--count", help="Stop after N notifications (0: never).")
    ] = 0,
) -> None:
    """Print change notifications as JSON lines, as they happen."""
    pw = _secret(PASSWORD, password, password_file)

    async def go() -> None:
        kind = canonical_type(type_name) if type_name else None
        async with _client(server, user, pw) as c:
            await c.subscribe(kind)
            seen = 0
            while count == 0 or seen < count:
                print(json.dumps(await c.notification(), sort_keys=True), flush=True)
                seen += 1

    _run(go)


@app.command("export")
def export_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Write the whole configuration as YAML or JSON."""
    if fmt not in ("yaml", "json"):
        _fail(f"--format: {fmt!r} is not yaml or json", 2)
    pw = _secret(PASSWORD, password, password_file)

    async def go() -> None:
        async with _client(server, user, pw) as c:
            document = await export_all(c)
        text = (
            json.dumps(document, indent=2, sort_keys=True)
            if fmt == "json"
            else yaml.safe_dump(document, sort_keys=True)
        )
        if output is None:
            print(text)
        else:
            output.write_text(text, encoding="utf-8")

    _run(go)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="A YAML or JSON export.")],
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Create or update every object of an export file (matched by type and name)."""
    pw = _secret(PASSWORD, password, password_file)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{file}: {exc}", 2)

    async def go() -> None:
        async with _client(server, user, pw) as c:
            counts = await import_all(c, document)
        print(", ".join(f"{n} {k}" for k, n in counts.items()))

    _run(go)


@app.command()
def status(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a server's management port for its role, epoch, serial, pid and uptime."""
    sec = _secret(SECRET, secret, secret_file)
    try:
        [(host, port)] = parse_servers(server)
    except ValueError as exc:
        _fail(f"--server: {exc} (give one HOST:MANAGEMENT_PORT)", 2)
        return

    async def go() -> None:
        async with open_management(host, port, sec, tls=_tls["client"]) as m:
            answer = await m.status()
        answer = {k: v for k, v in answer.items() if k not in ("re", "ok")}
        if as_json:
            print(json.dumps(answer, sort_keys=True))
            return
        table = Table(title=f"{host}:{port}")
        table.add_column("field")
        table.add_column("value")
        for key, value in answer.items():
            table.add_row(key, str(value))
        console.print(table)

    _run(go)


def _management_command(
    server: str,
    secret: tuple[str | None, Path | None],
    as_json: bool,
    command: str,
    force: bool = False,
) -> None:
    sec = _secret(SECRET, *secret)
    try:
        [(host, port)] = parse_servers(server)
    except ValueError as exc:
        _fail(f"--server: {exc} (give one HOST:MANAGEMENT_PORT)", 2)
        return

    async def go() -> None:
        async with open_management(host, port, sec, tls=_tls["client"]) as m:
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

    _run(go)


@app.command()
def promote(
    server: ServerOpt = "127.0.0.1:2131",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Take the lease at once: only with proof the primary is dead."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Switch the server at HOST:MANAGEMENT_PORT to primary."""
    _management_command(server, (secret, secret_file), as_json, "promote", force)


@app.command()
def demote(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Planned hand-over: the primary at HOST:MANAGEMENT_PORT becomes backup."""
    _management_command(server, (secret, secret_file), as_json, "demote")


@app.command()
def reload(
    server: ServerOpt = "127.0.0.1:2121",
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reload the server at HOST:MANAGEMENT_PORT from its database (after alarm 20170:
    the database went back or was replaced); it serves and writes again."""
    _management_command(server, (secret, secret_file), as_json, "reload")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("COLUMNS", "160")
    try:
        app()
    except BrokenPipeError:
        _reader_gone()


__all__ = ["ConfigClient", "app", "main"]
