"""The benchmarked Configuration Server: its file, its database, its process.

:func:`write_config` writes a ``confserv.conf`` of one master server for
SQLite or PostgreSQL (ADDP off, no management port), :func:`init_database_sync`
runs what ``cfgctl init`` runs (schema and bootstrap objects, administrator
password ``PASSWORD`` of ``tests/helpers/system.py``), :func:`fill_database`
adds objects to a SQLite file directly, and :func:`confserv_process` runs the
``confserv`` console script on the file as a child process
(``tests/helpers/nodes.py``'s :class:`Node`), stopping it on the way out;
:func:`first_read` times a starting server until it serves.
"""

from __future__ import annotations

import json
import math
import re
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from bench.confserv_clients import client
from confserv.wire.errors import ConfServError
from tests.helpers.nodes import Node
from tests.helpers.system import PASSWORD, free_port

#: The section (and Application name) of the benchmarked server.
SECTION = "confserv"
#: Time a server process gets to listen on its client port.
START_TIMEOUT = 60.0

_LOADED = re.compile(r"\b20003 Loaded (\d+) objects up to serial (\d+) in ([0-9.]+) s")
_PRIMARY = re.compile(r"\b20162 Role changed from \S+ to primary\b")


def write_config(
    directory: Path,
    *,
    engine: str,
    dbname: str,
    port: int,
    db_host: str = "127.0.0.1",
    db_port: int | None = None,
    username: str = "",
    password: str = "",
) -> Path:
    """Write ``directory/confserv.conf`` for one master server; return its path.

    ``engine`` is ``sqlite`` (``dbname`` a file) or ``postgre``. ADDP is left
    off (the default) so that no keep-alive traffic runs beside the figures.
    """
    db_lines = [f"dbengine = {engine}", f"dbname = {dbname}", f"dbserver = {db_host}"]
    if db_port is not None:
        db_lines.append(f"port = {db_port}")
    if username:
        db_lines.append(f"username = {username}")
    if password:
        db_lines.append(f"password = {password}")
    text = "\n".join(
        [
            "[log]",
            "verbose = standard",
            "all = stderr",
            "",
            "[dbserver]",
            *db_lines,
            "",
            f"[{SECTION}]",
            f"port = {port}",
            "server = dbserver",
            "",
        ]
    )
    path = directory / "confserv.conf"
    path.write_text(text, encoding="utf-8")
    return path


def init_database_sync(config: Path) -> None:
    """Create the schema and bootstrap objects, as ``cfgctl init -s confserv -c config``."""
    from confserv.admin.bootstrap import init_database
    from confserv.config.settings import load_server_settings

    settings = load_server_settings(config, SECTION)
    trio.run(init_database, settings, None, PASSWORD)


def loaded(server: Node) -> tuple[int, int, float] | None:
    """``(objects, serial, seconds)`` of the server's 20003 "Loaded" line, if written."""
    found = _LOADED.search(server.log_text())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), float(found.group(3))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def confserv_process(
    config: Path, port: int, log_path: Path, *, wait: bool = True
) -> Iterator[Node]:
    """Run ``confserv`` on ``config`` (client port ``port``) for the block.

    With ``wait`` the block starts once the server serves clients: it has
    logged that it became primary (event 20162) and its client port accepts
    connections (polled every 20 ms, at most :data:`START_TIMEOUT` seconds). On
    exit the server gets SIGTERM, then SIGKILL after 10 s.
    """
    server = Node(config, SECTION, port, None, log_path)
    server.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while wait and not (_PRIMARY.search(server.log_text()) and _listening(port)):
            server.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"confserv was not primary on port {port} after {START_TIMEOUT:g} s"
                )
            time.sleep(0.02)
        yield server
    finally:
        server.stop()


@contextmanager
def postgres_server() -> Iterator[tuple[Node, list[str]]]:
    """A ``confserv`` on a bootstrapped database of a throwaway PostgreSQL cluster
    (``tests/pg_cluster.py``); with the cluster's fsync, synchronous_commit and version."""
    from tests.pg_cluster import running_cluster

    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-confserv-") as tmp:
        settings = cluster.psql(
            "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit') "
            "|| ' ' || current_setting('server_version');"
        ).split()
        port = free_port()
        config = write_config(
            Path(tmp),
            engine="postgre",
            dbname=cluster.create_database(),
            port=port,
            db_host=cluster.host,
            db_port=cluster.port,
            username=cluster.user,
            password=cluster.password,
        )
        init_database_sync(config)
        with confserv_process(config, port, Path(tmp) / "pg.log") as server:
            yield server, settings


@contextmanager
def sqlite_server(directory: Path, name: str) -> Iterator[Node]:
    """A bootstrapped SQLite database in ``directory`` and a ``confserv`` on it."""
    port = free_port()
    config = write_config(
        directory, engine="sqlite", dbname=str(directory / f"{name}.sqlite"), port=port
    )
    init_database_sync(config)
    with confserv_process(config, port, directory / f"{name}.log") as server:
        yield server


def _object_rows(
    objects: int, tenant: int, first_dbid: dict[str, int]
) -> Iterator[tuple[str, int, str, str]]:
    """Rows ``(type, dbid, name, data)`` of the ``objects`` bulk objects.

    One Switch, 90% DNs on it (with an options section), the rest Persons and
    Hosts; every object as :func:`confserv.model.objects.new_object` makes it.
    """
    from confserv.model.objects import new_object

    def dump(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)

    switch_dbid = first_dbid["Switch"]
    switch = new_object("Switch", {"name": "bench-switch", "tenant_dbid": tenant})
    switch["dbid"] = switch_dbid
    yield ("Switch", switch_dbid, switch["name"], dump(switch))
    left = objects - 1
    dns, persons = left * 9 // 10, left // 20
    hosts = left - dns - persons
    dn = new_object(
        "DN",
        {
            "name": "dn",
            "number": "0",
            "tenant_dbid": tenant,
            "switch_dbid": switch_dbid,
            "options": {"TServer": {"dn-type": "extension", "use-override": "false"}},
        },
    )
    for i in range(dns):
        dbid = first_dbid["DN"] + i
        obj = {**dn, "dbid": dbid, "name": f"dn-{70000 + i}", "number": str(70000 + i)}
        yield ("DN", dbid, obj["name"], dump(obj))
    person = new_object("Person", {"name": "p", "user_name": "p", "tenant_dbid": tenant})
    for i in range(persons):
        dbid = first_dbid["Person"] + i
        obj = {**person, "dbid": dbid, "name": f"agent-{i}", "user_name": f"agent-{i}"}
        yield ("Person", dbid, obj["name"], dump(obj))
    host = new_object("Host", {"name": "h", "ip_address": "10.0.0.1", "tenant_dbid": tenant})
    for i in range(hosts):
        dbid = first_dbid["Host"] + i
        obj = {
            **host,
            "dbid": dbid,
            "name": f"host-{i}",
            "ip_address": f"10.1.{i // 250}.{i % 250}",
        }
        yield ("Host", dbid, obj["name"], dump(obj))


def fill_database(path: Path, objects: int) -> int:
    """Add :data:`objects` objects to the bootstrapped SQLite file; the total count."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        tenant = conn.execute("SELECT dbid FROM cfg_object WHERE type = 'Tenant'").fetchone()[0]
        last = {
            name.removeprefix("dbid:"): int(value)
            for name, value in conn.execute(
                "SELECT name, value FROM cfg_counter WHERE name LIKE 'dbid:%'"
            )
        }
        first = {kind: value + 1 for kind, value in last.items()}
        highest = dict(last)
        rows = []
        for row in _object_rows(objects, int(tenant), first):
            rows.append(row)
            highest[row[0]] = max(highest[row[0]], row[1])
        conn.executemany(
            "INSERT INTO cfg_object (type, dbid, name, data) VALUES (?, ?, ?, ?)", rows
        )
        conn.executemany(
            "UPDATE cfg_counter SET value = ? WHERE name = ?",
            [(value, f"dbid:{kind}") for kind, value in highest.items()],
        )
        conn.execute("COMMIT")
        total: int = conn.execute("SELECT COUNT(*) FROM cfg_object").fetchone()[0]
    finally:
        conn.close()
    return total


async def first_read(server: Node, deadline: float) -> tuple[float, float]:
    """Poll (every 10 ms) until a client of ``server`` registers and has a read answered.

    Returns ``time.monotonic()`` of when the port first accepted a TCP
    connection and of when the first read was answered. Raises RuntimeError
    when the server exits or ``deadline`` (``monotonic``) passes.
    """
    port = server.port
    listening = math.nan
    while True:
        server.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not serve before the deadline")
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.01)
            continue
        await stream.aclose()
        if math.isnan(listening):
            listening = time.monotonic()
        try:
            async with client(port, "bench-startup") as c:
                got = await c.read("Host", {"dbid": 1})
                if got:
                    return listening, time.monotonic()
        except (OSError, ConfServError):
            await trio.sleep(0.01)
