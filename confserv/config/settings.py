"""The Configuration Server's configuration file, read and checked into frozen settings.

The format is the Genesys one (``confserv.conf`` on UNIX, ``confserv.cfg`` on
Windows): a ``[section]`` line, then ``option = value`` lines. Spaces around
``=`` are optional; ``#`` and ``;`` start a comment line (a comment takes the
whole line: ``port = 2120 # clients`` is a bad port, not a port with a
comment). Section names are case-sensitive and may contain spaces
(``[Backup CS]``); option names are not case-sensitive. An option written with
an empty value (``server =``, as in Genesys' own sample) counts as not set.

A server reads its own section (named by ``-s``), the Configuration Database
section its ``server`` option names, ``[log]`` and ``[history-log]``. In those
sections every option must be known: a typo is an error, never ignored. Other
sections (``[hca]``, ``[soap]``, the other server's section) are not read at all,
so the primary and the backup can share one file.

Every problem is a :class:`ConfigError` whose text is one line naming the file,
the section and the option, e.g.
``confserv.conf: [confserv] port: 'abc' is not a port number (1 to 65535)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from addp import DEFAULT_MAX_FRAME_SIZE, OPTION_NAMES, AddpOptions, OptionError

from .bounds import (  # security helper A
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_OBJECT_SIZE,
    DEFAULT_MAX_UNAUTHENTICATED,
    object_size_limit,
    parse_bounds,
)
from .database import DATABASE_OPTIONS, DatabaseSettings, parse_database
from .format import ConfigError, Section, read_sections
from .permissions import warn_if_exposed
from .server_options import (
    HISTORY_TABLE,
    LOG_SEGMENT_MAX,
    LOG_SEGMENT_MIN,
    LOG_TABLE,
    SERVER_TABLE,
)
from .tls import TlsSettings, parse_tls

__all__ = [
    "DATABASE_OPTIONS",
    "HISTORY_OPTIONS",
    "HISTORY_TABLE",
    "LOG_OPTIONS",
    "LOG_SEGMENT_MAX",
    "LOG_SEGMENT_MIN",
    "LOG_TABLE",
    "SERVER_OPTIONS",
    "SERVER_TABLE",
    "ConfigError",
    "DatabaseSettings",
    "HistorySettings",
    "LogSettings",
    "Section",
    "ServerSettings",
    "load_server_settings",
    "parse_database",
    "read_sections",
]

_Verbose = Literal["all", "debug", "trace", "interaction", "standard", "none"]
_Mode = Literal["master", "proxy"]

#: Options of the server's own section (``[confserv]``, ``[Backup CS]``, ...).
SERVER_OPTIONS: frozenset[str] = SERVER_TABLE.names
#: Options of ``[log]``.
LOG_OPTIONS: frozenset[str] = LOG_TABLE.names
#: Options of ``[history-log]``.
HISTORY_OPTIONS: frozenset[str] = HISTORY_TABLE.names

_S = SERVER_TABLE
_VERBOSE: dict[str, _Verbose] = {
    "all": "all",
    "debug": "debug",
    "trace": "trace",
    "interaction": "interaction",
    "standard": "standard",
    "none": "none",
}
_MODES: dict[str, _Mode] = {"master": "master", "proxy": "proxy"}
_BOOLEANS: dict[str, bool] = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}
_STREAMS = frozenset({"stdout", "stderr", "syslog"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """The ``[log]`` section.

    Attributes:
        verbose: ``verbose``: which messages are written.
        all: ``all``: ``stdout``, ``stderr``, or a log file (an absolute path,
            made so against the configuration file's directory).
    """

    verbose: _Verbose = "standard"
    all: str = "stderr"
    #: ``format``: ``text`` (dated lines) or ``json`` (one object per line).
    format: Literal["text", "json"] = "text"
    #: ``segment``: a log file is rotated when it reaches this many bytes (None: never;
    #: then the file is reopened when logrotate moves it away).
    segment: int | None = None
    #: ``expire``: how many rotated files are kept.
    expire: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class HistorySettings:
    """The ``[history-log]`` section: how long and how much change history is kept.

    Attributes:
        expiration_days: ``expiration``, days a change stays in the history (1 to 30).
        max_records: ``max-records``, most records returned for one history
            request (1 to 1000).
        audit_expiration_days: ``audit-expiration``, days audit records are kept (1 to 30).
        audit_max_records: ``audit-max-records``, most audit records returned
            for one request (1 to 1000).
    """

    expiration_days: int = 30
    max_records: int = 1000
    audit_expiration_days: int = 30
    audit_max_records: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything one Configuration Server reads from its configuration file.

    Attributes:
        file: The configuration file, as the caller named it.
        section: The server's section (``-s``), the name of its Application object.
        port: ``port``, where clients connect.
        management_port: ``management-port``, where the Solution Control Server
            watches and commands this server; None when not set.
        management_secret: ``management-secret``, what the SCS must present on
            the management port; None when not set.
        db: The Configuration Database settings; None only in proxy mode.
        encryption: ``encryption``: every port speaks TLS, and so do this
            server's links to its primary or master (see ``tls``).
        encoding: ``encoding``, the name Python gives the codec (``utf-8``).
        addp: The ADDP options of this section (``protocol``, ``addp-timeout``,
            ``addp-remote-timeout``, ``addp-trace``).
        log: The ``[log]`` section, defaults when absent.
        history: The ``[history-log]`` section, defaults when absent.
        mode: ``mode``: ``master`` works against the database, ``proxy``
            follows a master.
        masters: ``master``, the ``(host, port)`` of the masters a proxy
            follows, in order; empty in master mode.
        pair: ``pair``, no longer needed (pair membership comes from the
            Application objects in the database); when given it must name the
            pair's primary Application, or the server refuses to start.
        lease_ttl: ``lease-ttl``, seconds a primary's lease lasts.
        lease_renew: ``lease-renew``, seconds between renewals; less than ``lease_ttl``.
        max_frame_size: ``max-frame-size``, largest message accepted, in bytes.
        listen_address: ``listen-address``, the address both ports listen on
            (``127.0.0.1`` when not set; ``0.0.0.0`` for every interface).
        advertise_host: ``advertise-host``, the host peers, proxies and
            clients are told to reach this server at (written in the lease);
            None: the listen address (the host name when it is a wildcard).
        advertise_port: ``advertise-port``, the client port told to others;
            None: ``port``. For a server reached through NAT, a load balancer
            or a relay.
        advertise_management_port: ``advertise-management-port``, the
            management port told to a following backup; None: ``management-port``.
        auth_timeout: ``auth-timeout``, seconds a client connection has to
            register before it is closed (other ports may use it too).
        max_connections: ``max-connections``, the most client connections open at once.
        max_unauthenticated: ``max-unauthenticated``, the most client
            connections open at once that have not registered yet.
        max_object_size: ``max-object-size``, the largest an object or one
            change may encode to, in bytes; at most ``max_frame_size`` less
            the margin of :func:`~.bounds.object_size_limit`. A write over
            it is refused before commit.
        no_default_access: ``no-default-access``: a Person created on this
            server starts with no rights until an administrator grants some
            (the seed's "No Default Access for New Users"); compared between
            the primary and the backup.
        tls: ``encryption`` and the ``tls-*`` options, with the contexts of the
            listeners and of this server's own connections
            (:class:`~.tls.TlsSettings`; plain TCP when encryption is false).
    """

    file: Path
    section: str
    port: int
    management_port: int | None = None
    management_secret: str | None = None
    db: DatabaseSettings | None
    encryption: bool = False
    encoding: str = "utf-8"
    addp: AddpOptions = field(default_factory=AddpOptions)
    log: LogSettings = field(default_factory=LogSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    mode: _Mode = "master"
    masters: tuple[tuple[str, int], ...] = ()
    pair: str | None = None
    lease_ttl: float = 10.0
    lease_renew: float
    #: ``resume-ticket-ttl``: seconds a resumption ticket lasts (0: none issued).
    resume_ticket_ttl: float = 3600.0
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    listen_address: str = "127.0.0.1"
    #: ``http-port``: the health and metrics port (on ``listen-address``); None: none.
    http_port: int | None = None
    advertise_host: str | None = None
    advertise_port: int | None = None
    advertise_management_port: int | None = None
    # security helper A
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE
    no_default_access: bool = False
    tls: TlsSettings = field(default_factory=TlsSettings)  # security helper T

    def __post_init__(self) -> None:
        limit = object_size_limit(self.max_frame_size)
        if self.max_object_size > limit and self.max_object_size != DEFAULT_MAX_OBJECT_SIZE:
            raise ValueError(
                f"max_object_size {self.max_object_size} leaves no room in max_frame_size "
                f"{self.max_frame_size}: at most {limit}"
            )
        if self.max_object_size > limit:  # the default under a small frame limit: follow it
            object.__setattr__(self, "max_object_size", limit)


def load_server_settings(file: Path | str, section: str) -> ServerSettings:
    """Read the settings of the server whose section is ``section``.

    Reads that section, the database section its ``server`` option names
    (required in master mode, refused in proxy mode), and ``[log]`` and
    ``[history-log]`` when present. Relative file paths (a sqlite ``dbname``,
    a log file) are taken against the configuration file's directory.

    Raises:
        ConfigError: the first problem found, naming file, section and option.
    """
    path = Path(file)
    sections = read_sections(path)
    if section not in sections:
        raise ConfigError(path, f"no section [{section}]", section)
    base = path.resolve().parent
    own = Section(path, section, sections[section])
    own.check_known(SERVER_OPTIONS)

    mode = own.choice(_S["mode"], _MODES)
    port = own.port("port")
    if port is None:
        raise own.error("port", "missing (the port clients connect to)")
    management_port = own.port("management-port")
    if management_port == port:
        raise own.error("management-port", f"{own.text('management-port')!r} is the same as port")
    try:
        addp = AddpOptions.from_mapping(
            {name: value for name in OPTION_NAMES if (value := own.text(name)) is not None}
        )
    except OptionError as err:
        detail = str(err).removeprefix(f"{err.option}: ")
        raise own.error(err.option, detail) from None
    lease_ttl = own.seconds(_S["lease-ttl"])
    lease_renew = own.seconds(_S["lease-renew"], lease_ttl / 3)
    if lease_renew >= lease_ttl:
        raise own.error(
            "lease-renew",
            f"{own.text('lease-renew')!r} is not less than lease-ttl ({lease_ttl:g} seconds)",
        )

    db_section = own.text("server")
    db: DatabaseSettings | None = None
    masters: tuple[tuple[str, int], ...] = ()
    if mode == "master":
        if own.text("master") is not None:
            raise own.error("master", "not used when mode is master (only a proxy has a master)")
        if db_section is None:
            raise own.error("server", "missing (names the Configuration Database section)")
        if db_section == section:
            raise own.error("server", f"{db_section!r} is this server's own section")
        if db_section not in sections:
            raise own.error("server", f"no section [{db_section}]")
        db = parse_database(Section(path, db_section, sections[db_section]), base)
    else:
        if db_section is not None:
            raise own.error("server", "not used when mode is proxy (a proxy reads its master)")
        masters = own.masters("master")
        for option in ("advertise-host", "advertise-port", "advertise-management-port"):
            if own.text(option) is not None:
                raise own.error(option, "not used when mode is proxy (only a master is advertised)")

    # security helper C: one warning line when others can read the secrets in the file
    secrets = {"management-secret": own.text("management-secret"), "password": db and db.password}
    warn_if_exposed(path, [name for name, value in secrets.items() if value])

    return ServerSettings(
        file=path,
        section=section,
        port=port,
        management_port=management_port,
        management_secret=own.text("management-secret"),
        db=db,
        encryption=own.choice(_S["encryption"], _BOOLEANS),
        tls=parse_tls(own, base),  # security helper T
        encoding=own.encoding(_S["encoding"]),
        addp=addp,
        log=_log(path, sections, base),
        history=_history(path, sections),
        mode=mode,
        masters=masters,
        pair=own.text("pair"),
        lease_ttl=lease_ttl,
        lease_renew=lease_renew,
        resume_ticket_ttl=own.seconds(_S["resume-ticket-ttl"]),
        max_frame_size=own.integer(_S["max-frame-size"]),
        listen_address=own.string(_S["listen-address"]) or "127.0.0.1",
        http_port=own.port("http-port"),
        advertise_host=own.text("advertise-host"),
        advertise_port=own.port("advertise-port"),
        advertise_management_port=own.port("advertise-management-port"),
        no_default_access=own.choice(_S["no-default-access"], _BOOLEANS),
        **parse_bounds(own),  # security helper A
    )


def _log(path: Path, sections: Mapping[str, Mapping[str, str]], base: Path) -> LogSettings:
    """Check ``[log]``; the defaults when the file has none."""
    if "log" not in sections:
        return LogSettings()
    log = Section(path, "log", sections["log"])
    log.check_known(LOG_OPTIONS)
    output = log.string(LOG_TABLE["all"]) or "stderr"
    output = output.lower() if output.lower() in _STREAMS else str((base / output).resolve())
    return LogSettings(
        verbose=log.choice(LOG_TABLE["verbose"], _VERBOSE),
        all=output,
        format=log.choice(LOG_TABLE["format"], {"text": "text", "json": "json"}),
        segment=log.size(LOG_TABLE["segment"]),
        expire=log.integer(LOG_TABLE["expire"]),
    )


def _history(path: Path, sections: Mapping[str, Mapping[str, str]]) -> HistorySettings:
    """Check ``[history-log]``; the defaults when the file has none."""
    if "history-log" not in sections:
        return HistorySettings()
    history = Section(path, "history-log", sections["history-log"])
    history.check_known(HISTORY_OPTIONS)
    return HistorySettings(
        expiration_days=history.integer(HISTORY_TABLE["expiration"]),
        max_records=history.integer(HISTORY_TABLE["max-records"]),
        audit_expiration_days=history.integer(HISTORY_TABLE["audit-expiration"]),
        audit_max_records=history.integer(HISTORY_TABLE["audit-max-records"]),
    )
