"""The Configuration Database section: its options, and what they say once checked.

The section a server's ``server`` option names in ``confserv.conf`` (and the
one ``[scs] database`` names in ``scs.conf``): engine, where the DBMS is (for
PostgreSQL a list of servers, :mod:`~.dbhosts`), the database, credentials
and timeouts. :func:`parse_database` checks it; errors name section and key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from addp.optionspec import OptionSpec, OptionTable

from .dbhosts import DEFAULT_PG_PORT, MAX_DB_HOSTS, HostListError, parse_db_hosts
from .format import Section

_Engine = Literal["sqlite", "postgre"]

#: Options of the Configuration Database section (the one ``server`` names).
DATABASE_TABLE = OptionTable.of(
    OptionSpec(
        name="dbengine",
        kind="choice",
        shown="(required)",
        choices=("sqlite", "postgre"),
        meaning="The DBMS (`mssql`, `oracle`, `db2` are refused as not supported).",
    ),
    OptionSpec(
        name="dbname",
        kind="text",
        shown="(required)",
        meaning="For `sqlite`, the database file, relative to this file's directory; for "
        "`postgre`, the database name.",
    ),
    OptionSpec(
        name="dbserver",
        kind="list",
        default="127.0.0.1",
        meaning="The DBMS host. For `postgre`, it may list every server of a replicated "
        "database: `10.0.0.4:5432, 10.0.0.5:5432` (each `host` or `host:port`, IPv6 as "
        f"`[address]:port`; an entry without a port takes `port`; at most {MAX_DB_HOSTS}). "
        "The server uses the one that accepts writes and follows it when the database fails "
        "over. A bad list is one line naming the option; `sqlite` refuses a list.",
    ),
    OptionSpec(
        name="host",
        kind="list",
        shown="`127.0.0.1`",
        meaning="The same as `dbserver`, read only when `dbserver` is absent.",
    ),
    OptionSpec(
        name="port",
        kind="port",
        shown=f"`{DEFAULT_PG_PORT}` (postgre)",
        meaning="The DBMS port; for a list, the port of the entries that give none.",
    ),
    OptionSpec(
        name="username",
        kind="text",
        shown="(required for postgre)",
        meaning="The DBMS account.",
    ),
    OptionSpec(name="password", kind="secret", shown="empty", meaning="Its password."),
    OptionSpec(
        name="server",
        kind="text",
        meaning="In Genesys' sample; accepted and not used.",
    ),
    OptionSpec(
        name="reconnect-timeout",
        kind="seconds",
        default="10",
        low=0.1,
        high=3600.0,
        meaning="Accepted and compared between the pair; a server retries its database at "
        "the pace of its lease renewal, not at this one.",
    ),
    OptionSpec(
        name="response-timeout",
        kind="seconds",
        default="600",
        low=1.0,
        high=86400.0,
        range_shown="1 to 86400 s, at least `connect-timeout`",
        meaning="Seconds a database request may take (at most 30 are used).",
    ),
    OptionSpec(
        name="connect-timeout",
        kind="seconds",
        default="5",
        low=0.1,
        high=86400.0,
        range_shown="0.1 to `response-timeout` s",
        meaning="Seconds one listed PostgreSQL server may take to accept a connection and, "
        "once connected, to acknowledge what is sent to it, before it counts as unreachable.",
    ),
)
DATABASE_OPTIONS: frozenset[str] = DATABASE_TABLE.names
_ENGINES: dict[str, _Engine] = {"sqlite": "sqlite", "postgre": "postgre"}
#: Engines Genesys supports and this project does not.
_UNSUPPORTED_ENGINES = frozenset({"mssql", "oracle", "db2"})
_SQLITE_IN_MEMORY = ":memory:"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    """The Configuration Database section (the one the server's ``server`` option names).

    Attributes:
        section: The section's name, e.g. ``dbserver``.
        engine: ``dbengine``: ``sqlite`` or ``postgre``.
        host: The DBMS host: ``dbserver``, else ``host``, else ``127.0.0.1``; for
            PostgreSQL a list of servers too (``a:5432, b:5432``, see
            :mod:`~.dbhosts`): the one that accepts writes is used.
        port: ``port`` of the DBMS, or None for the engine's default (5432):
            the port of the entries of ``host`` that give none.
        dbname: ``dbname``. For sqlite the database file, made absolute against
            the configuration file's directory (``:memory:`` is kept as is).
        username: ``username`` (required for postgre).
        password: ``password``.
        reconnect_timeout: ``reconnect-timeout``, seconds between attempts to
            reach a database that went away.
        response_timeout: ``response-timeout``, seconds a database request may take.
        connect_timeout: ``connect-timeout``, seconds one server of ``host`` may
            take to accept a connection (and, once connected, to acknowledge
            what is sent to it) before it counts as unreachable.
    """

    section: str
    engine: _Engine
    host: str = "127.0.0.1"
    port: int | None = None
    dbname: str
    username: str = ""
    password: str = ""
    reconnect_timeout: float = 10.0
    response_timeout: float = 600.0
    connect_timeout: float = 5.0

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """``(host, port)`` of every server ``host`` lists (HostListError if it is bad)."""
        return parse_db_hosts(self.host, self.port)


def parse_database(db: Section, base: Path) -> DatabaseSettings:
    """Check a Configuration Database section (also ``scs.conf``'s ``[scs] database``)."""
    db.check_known(DATABASE_OPTIONS)
    text = db.text("dbengine")
    if text is None:
        raise db.error("dbengine", "missing (use sqlite or postgre)")
    word = text.lower()
    if word in _UNSUPPORTED_ENGINES:
        raise db.error("dbengine", f"{text!r} is not supported (use sqlite or postgre)")
    if word not in _ENGINES:
        raise db.error("dbengine", f"{text!r} is not a database engine (use sqlite or postgre)")
    engine = _ENGINES[word]
    dbname = db.text("dbname")
    if dbname is None:
        what = "the database file" if engine == "sqlite" else "the database name"
        raise db.error("dbname", f"missing ({what})")
    if engine == "sqlite" and dbname != _SQLITE_IN_MEMORY:
        dbname = str((base / dbname).resolve())
    username = db.text("username")
    if username is None and engine == "postgre":
        raise db.error("username", "missing (postgre needs a user name)")
    host_option = "dbserver" if db.text("dbserver") else "host"
    host, port = db.text(host_option) or "127.0.0.1", db.port(DATABASE_TABLE["port"])
    if engine == "sqlite" and "," in host:
        raise db.error(host_option, "lists several servers, but sqlite is one file (postgre?)")
    try:
        if engine == "postgre":
            parse_db_hosts(host, port)
    except HostListError as exc:
        raise db.error(host_option, str(exc)) from None
    response_timeout = db.seconds(DATABASE_TABLE["response-timeout"])
    return DatabaseSettings(
        section=db.name,
        engine=engine,
        host=host,
        port=port,
        dbname=dbname,
        username=username or "",
        password=db.text("password") or "",
        reconnect_timeout=db.seconds(DATABASE_TABLE["reconnect-timeout"]),
        response_timeout=response_timeout,
        connect_timeout=db.seconds(DATABASE_TABLE["connect-timeout"], high=response_timeout),
    )
