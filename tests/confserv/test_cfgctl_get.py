"""``cfgctl get``'s views and ``cfgctl types`` (issue 15: "cfgctl get has a wide or
vertical view and lists the valid types and fields").

An unknown type, field or view is one line that lists the valid ones, and exit
status 2, before any password is asked for or any server is reached.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from ..helpers.nodes import Node, lone_primary
from ..helpers.system import (
    BIN,
    PASSWORD,
    SECRET,
)

CFGCTL = str(BIN / "cfgctl")
#: No CFG_PASSWORD: the bad command lines must fail before asking for one.
BARE = {k: v for k, v in os.environ.items() if k not in ("CFG_PASSWORD", "CFG_SECRET")}
ENV = {**BARE, "CFG_PASSWORD": PASSWORD, "CFG_SECRET": SECRET, "COLUMNS": "200"}
TYPES = "Tenant, Folder, Host, Application, AccessGroup, Person, Switch, DN"
HOST_FIELDS = "name, state, folder_dbid, tenant_dbid, ip_address, os_type, lca_port"


def cfgctl(*args: str, env: dict[str, str] = ENV) -> tuple[int, str, str]:
    done = subprocess.run(
        [CFGCTL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


def test_types_lists_every_type_and_its_own_fields() -> None:
    assert cfgctl("types") == (
        0,
        "every type: name, state, folder_dbid, tenant_dbid, options\n"
        "Tenant: is_service_provider\n"
        "Folder: object_type, parent_dbid\n"
        "Host: ip_address, os_type, lca_port\n"
        "Application: app_type, is_server, host_dbid, port, backup_server_dbid, "
        "redundancy_type, reconnect_timeout, reconnect_attempts, autorestart, command_line, "
        "command_line_arguments, working_directory\n"
        "AccessGroup: is_administrator, permissions\n"
        "Person: user_name, first_name, last_name, employee_id, is_agent, password, "
        "access_group_dbids, permissions\n"
        "Switch: switch_type, physical_switch\n"
        "DN: number, dn_type, switch_dbid\n",
        "",
    )


def test_types_of_one_type_gives_kinds_and_defaults() -> None:
    assert cfgctl("types", "dn") == (
        0,
        "field        kind                default\n"
        "name         str\n"
        "state        enabled | disabled  enabled\n"
        "folder_dbid  Folder dbid\n"
        "tenant_dbid  Tenant dbid\n"
        "number       str\n"
        "dn_type      str                 extension\n"
        "switch_dbid  Switch dbid\n"
        "options      section.key=value\n",
        "",
    )
    code, out, _ = cfgctl("types", "Person", "--json")
    assert code == 0
    assert json.loads(out)["Person"][-2:] == [
        {"field": "access_group_dbids", "kind": "list of AccessGroup dbids", "default": ""},
        {"field": "permissions", "kind": "rights (KEY:LETTERS,...)", "default": ""},
    ]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["types", "Hots"], f"unknown object type 'Hots' (types: {TYPES})"),
        (["get", "Hots"], f"unknown object type 'Hots' (types: {TYPES})"),
        (["put", "Widget", "w"], f"unknown object type 'Widget' (types: {TYPES})"),
        (["delete", "Widget", "w"], f"unknown object type 'Widget' (types: {TYPES})"),
        (
            ["get", "Host", "--output", "tall"],
            "--output: unknown view 'tall' (views: table, wide, vertical, json)",
        ),
        (
            ["get", "host", "--columns", "name,ip"],
            f"--columns: Host has no field 'ip' (fields: dbid, {HOST_FIELDS}, options)",
        ),
        (
            ["put", "Host", "h", "ip=10.0.0.1"],
            f"Host has no field 'ip' (fields: {HOST_FIELDS})",
        ),
        (["put", "Host", "h", "lca_port=x"], "Host.lca_port needs an integer, got 'x'"),
    ],
)
def test_an_unknown_type_field_or_view_is_one_line_and_status_2(args: list[str], line: str) -> None:
    assert cfgctl(*args, env=BARE) == (2, "", f"cfgctl: {line}\n")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Node]:
    """One master of a generated file, primary (its backup never started)."""
    async with lone_primary(tmp_path) as node:
        yield node


async def test_the_views_of_get(server: Node) -> None:
    where = f"127.0.0.1:{server.port}"

    def run(*args: str) -> tuple[int, str, str]:
        return cfgctl(*args, "--server", where)

    put = ["put", "Host", "hostB", "ip_address=10.1.1.1", "lca_port=5000"]
    code, out, _ = await trio.to_thread.run_sync(
        lambda: run(*put, "-o", "addp.timeout=5", "-o", "a.b=c", "--json")
    )
    assert code == 0
    dbid = json.loads(out)["dbid"]

    vertical = await trio.to_thread.run_sync(run, "get", "Host", "hostB", "-O", "vertical")
    assert vertical == (
        0,
        f"*** Host 'hostB' (dbid {dbid}) ***\n"
        "                name: hostB\n"
        "               state: enabled\n"
        "         folder_dbid:\n"
        "         tenant_dbid:\n"
        "          ip_address: 10.1.1.1\n"
        "             os_type: unix\n"
        "            lca_port: 5000\n"
        "options.addp.timeout: 5\n"
        "         options.a.b: c\n",
        "",
    )
    as_json = await trio.to_thread.run_sync(run, "get", "Host", "hostB", "--json")
    assert as_json == await trio.to_thread.run_sync(run, "get", "Host", "hostB", "-O", "json")
    [host] = json.loads(as_json[1])
    assert host["options"] == {"addp": {"timeout": "5"}, "a": {"b": "c"}}

    code, table, _ = await trio.to_thread.run_sync(run, "get", "Host")
    assert code == 0
    assert "┃ dbid ┃ name " in table
    assert "┃ state   ┃ ip_address ┃ os_type ┃ lca_port ┃\n" in table
    assert "options" not in table
    code, wide, _ = await trio.to_thread.run_sync(run, "get", "Host", "hostB", "-O", "wide")
    assert code == 0
    assert "┃ folder_dbid ┃ tenant_dbid ┃ ip_address ┃ os_type ┃ lca_port ┃ options " in wide
    assert "│ addp.timeout=5; a.b=c │" in wide
    picked = await trio.to_thread.run_sync(
        run, "get", "Host", "hostB", "--columns", "name,ip_address"
    )
    assert picked == (
        0,
        "         Host         \n"
        "┏━━━━━━━┳━━━━━━━━━━━━┓\n"
        "┃ name  ┃ ip_address ┃\n"
        "┡━━━━━━━╇━━━━━━━━━━━━┩\n"
        "│ hostB │ 10.1.1.1   │\n"
        "└───────┴────────────┘\n",
        "",
    )
    assert await trio.to_thread.run_sync(run, "get", "Host", "nosuch", "-O", "vertical") == (
        1,
        "",
        "cfgctl: no Host named 'nosuch'\n",
    )
