"""``cfgctl``: read and change the configuration, and control servers, from a shell.

Tables for people, ``--json`` for scripts. Errors are one line on stderr and
exit status 1 (2 for a bad command line or configuration file).

It starts light (``--version``, ``--help``: typer only; ``status``: the
client library and trio, never the store and SQLAlchemy): every heavier
import is in the command that needs it (tests/confserv/test_cli_imports.py).
The management port's commands are in :mod:`confserv.admin.cfgctl_manage`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .cfgctl_manage import COMMANDS as MANAGEMENT_COMMANDS
from .cli_common import (
    TLS,
    app,
    checked,
    client,
    console,
    fail,
    reader_gone,
    run,
    secret,
    servers,
)
from .cli_options import JsonOpt, PasswordFileOpt, PasswordOpt, ServerOpt, UserOpt
from .secret_input import ADMIN_PASSWORD, PASSWORD


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
    from confserv.config.settings import ConfigError, load_server_settings
    from confserv.model.passwords import COST_ENV, PasswordCostError, parse_cost, set_default_cost

    try:
        cost = parse_cost(password_cost or os.environ.get(COST_ENV) or "owasp")
    except PasswordCostError as exc:
        source = "--password-cost" if password_cost else COST_ENV
        fail(f"{source}: {exc}", 2)
    set_default_cost(cost)
    admin_password = secret(ADMIN_PASSWORD, password, password_file, confirm=True)
    try:
        primary = load_server_settings(config, section)
        backup = None
        if backup_section is not None:
            backup = load_server_settings(backup_config or config, backup_section)
    except ConfigError as exc:
        fail(str(exc), 2)
    if primary.db is None:
        fail(f"[{section}] is a proxy; init needs a master's configuration", 2)

    async def go() -> None:
        # Only ``init`` needs the store (and SQLAlchemy): the other commands start without it.
        from .bootstrap import init_database

        report = await init_database(primary, backup, admin_password)
        out = console()
        for name in report.created:
            out.print(f"created  {name}")
        for name in report.existing:
            out.print(f"existing {name}")
        out.print(f"database {report.uuid}")

    run(go)


OutputOpt = Annotated[
    str,
    typer.Option(
        "--output",
        "-O",
        metavar="VIEW",
        help="table (dbid, name, state, the main fields), wide (every field and "
        "the options), vertical (field: value lines, a block per object) or json.",
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns", metavar="FIELD,...", help="The fields to show (cfgctl types TYPE lists them)."
    ),
]


@app.command()
def get(
    type_name: Annotated[str, typer.Argument(metavar="TYPE")],
    name: Annotated[str | None, typer.Argument()] = None,
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    output: OutputOpt = "table",
    columns: ColumnsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print objects of TYPE (all, or the one named NAME); cfgctl types lists the types."""
    from . import views

    view = "json" if as_json else checked(lambda: views.check_view(output))
    kind = checked(lambda: views.object_type(type_name))
    shown = checked(lambda: views.columns_of(kind, view, columns))
    pw = secret(PASSWORD, password, password_file)

    async def go() -> None:
        async with client(server, user, pw) as c:
            objects = await c.read(kind, {"name": name} if name else None)
        if name and not objects:
            fail(f"no {kind} named {name!r}")
        if view == "json":
            print(views.as_json(objects))
        elif view == "vertical":
            if objects:
                print(views.vertical(objects, kind))
        else:
            console().print(views.table(objects, kind, shown))

    run(go)


@app.command()
def types(
    type_name: Annotated[str | None, typer.Argument(metavar="[TYPE]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the object types and their fields, or TYPE's fields with their kinds and defaults."""
    from . import views

    if as_json:
        document = views.types_document()
        if type_name is not None:
            kind = checked(lambda: views.object_type(type_name))
            document = {kind: document[kind]}
        print(json.dumps(document, indent=2))
        return
    if type_name is None:
        print("\n".join(views.types_lines()))
        return
    kind = checked(lambda: views.object_type(type_name))
    rows = [("field", "kind", "default"), *views.type_rows(kind)]
    rows.append(("options", "section.key=value", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for field, what, default in rows:
        print(f"{field.ljust(widths[0])}  {what.ljust(widths[1])}  {default}".rstrip())


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
    from .transfer import parse_fields, parse_options
    from .views import object_type

    kind = checked(lambda: object_type(type_name))
    values = checked(lambda: parse_fields(kind, fields or []))
    options = checked(lambda: parse_options(option or []))
    pw = secret(PASSWORD, password, password_file)

    async def go() -> None:
        async with client(server, user, pw) as c:
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

    run(go)


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
    from .views import object_type

    kind = checked(lambda: object_type(type_name))
    pw = secret(PASSWORD, password, password_file)

    async def go() -> None:
        async with client(server, user, pw) as c:
            existing = await c.get(kind, name)
            if existing is None:
                fail(f"no {kind} named {name!r}")
            answer = await c.delete(kind, existing["dbid"])
        print(f"deleted {kind} {name!r}: serial {answer['serial']}")

    run(go)


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
    from .views import object_type

    kind = checked(lambda: object_type(type_name)) if type_name else None
    pw = secret(PASSWORD, password, password_file)

    async def go() -> None:
        async with client(server, user, pw) as c:
            await c.subscribe(kind)
            seen = 0
            while count == 0 or seen < count:
                print(json.dumps(await c.notification(), sort_keys=True), flush=True)
                seen += 1

    run(go)


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
        fail(f"--format: {fmt!r} is not yaml or json", 2)
    pw = secret(PASSWORD, password, password_file)

    import yaml

    from .transfer import export_all

    async def go() -> None:
        async with client(server, user, pw) as c:
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

    run(go)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="A YAML or JSON export.")],
    server: ServerOpt = "127.0.0.1:2120",
    user: UserOpt = "default",
    password: PasswordOpt = None,
    password_file: PasswordFileOpt = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0.1,
            help="How long to wait for a primary when none serves (a failover) before "
            "stopping; running the same import again is safe.",
        ),
    ] = 30.0,
) -> None:
    """Create or update every object of an export file (matched by type and name):
    through a failover of the pair, with progress on a terminal, and safe to run again."""
    import yaml

    from confserv.wire.errors import ConfServError, FieldValueError

    from .importing import ImportCutOff, ImportRun, run_import
    from .transfer import import_items

    pw = secret(PASSWORD, password, password_file)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{file}: {exc}", 2)
    try:
        import_items(document)
    except FieldValueError as exc:
        fail(f"{file}: {exc}", 2)
    run = ImportRun(servers(server), user, pw, TLS["client"], wait)
    try:
        counts = run_import(document, run)
    except ImportCutOff as exc:
        fail(str(exc))
    except (ConfServError, OSError) as exc:
        fail(str(exc) if isinstance(exc, ConfServError) else f"cannot connect: {exc}")
    print(", ".join(f"{n} {k}" for k, n in counts.items()))


for _command in MANAGEMENT_COMMANDS:
    app.command()(_command)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("COLUMNS", "160")
    try:
        app()
    except BrokenPipeError:
        reader_gone()


__all__ = ["app", "main"]
