"""The option tables of ``confserv.conf``: the server's section, ``[log]``, ``[history-log]``.

The tables (:class:`~addp.optionspec.OptionTable`) are what
:mod:`~.settings` accepts and where its defaults and bounds come from; the
database section's table is in :mod:`~.database`, the TLS options' in
:mod:`~.tls`, the client port's bounds in :mod:`~.bounds`.
``docs/configuration.md`` is generated from them (``python -m scs.reference``).
"""

from __future__ import annotations

from addp.optionspec import ADDP_TABLE, OptionSpec, OptionTable

from .bounds import BOUNDS_TABLE
from .tls import ENCRYPTION, TLS_TABLE

__all__ = [
    "HISTORY_TABLE",
    "LOG_SEGMENT_MAX",
    "LOG_SEGMENT_MIN",
    "LOG_TABLE",
    "SERVER_TABLE",
    "VERBOSE_LEVELS",
]

#: Bounds of ``[log] segment`` (and ``[scs] log-segment``): 64 KB to 10 GB.
LOG_SEGMENT_MIN, LOG_SEGMENT_MAX = 64 << 10, 10 << 30

#: ``[log] verbose`` (and ``[scs] verbose``), from the most to the least written.
VERBOSE_LEVELS = ("all", "debug", "trace", "interaction", "standard", "none")

#: The server's own section (``[confserv]``, ``[Backup CS]``, ...).
SERVER_TABLE = OptionTable.of(
    OptionSpec(
        name="port", kind="port", shown="(required)", meaning="The port clients connect to."
    ),
    OptionSpec(
        name="management-port",
        kind="port",
        meaning="Where the supervisor, the backup and proxies connect (must differ from `port`).",
    ),
    OptionSpec(
        name="management-secret",
        kind="secret",
        meaning="The secret of the management port (mutual challenge-response, "
        "`cfgha-mgmt-v2`; never sent). The same on both servers of the pair, on their "
        "proxies and in `scs.conf`; a long random string, different from `control-secret`.",
    ),
    OptionSpec(
        name="server",
        kind="section",
        shown="(required in master mode)",
        meaning="The name of the section holding the Configuration Database settings.",
    ),
    OptionSpec(
        name="mode",
        kind="choice",
        default="master",
        choices=("master", "proxy"),
        meaning="`master` works against the database; `proxy` follows a master (then "
        "`master` instead of `server`).",
    ),
    OptionSpec(
        name="master",
        kind="list",
        shown="(required in proxy mode)",
        meaning="`host:management-port[, host:management-port]`: the masters a proxy "
        "follows, in order (IPv6 as `[address]:port`).",
    ),
    OptionSpec(
        name="pair",
        kind="text",
        meaning="No longer needed (the database defines the pair). When given it must name "
        "the pair's primary Application, or the server refuses to start.",
    ),
    OptionSpec(
        name="lease-ttl",
        kind="seconds",
        default="10",
        low=0.2,
        high=3600.0,
        meaning="Seconds a primary's lease lasts. Also how long a process's claim on its "
        "Application lasts. Compared between primary and backup.",
    ),
    OptionSpec(
        name="lease-renew",
        kind="seconds",
        shown="`lease-ttl` / 3",
        low=0.0,
        high=3600.0,
        above_low=True,
        range_shown="more than 0, less than `lease-ttl`",
        meaning="Seconds between renewals. Compared between primary and backup.",
    ),
    OptionSpec(
        name="resume-ticket-ttl",
        kind="seconds",
        default="3600",
        low=0.0,
        high=604800.0,
        meaning="Seconds a resumption ticket lasts: a client logged in with its password "
        "resumes its session on the other server of the pair after a failover without "
        "a password check (docs/protocol.md 10.20). 0: no tickets. Compared between "
        "primary and backup.",
    ),
    BOUNDS_TABLE,
    OptionSpec(
        name="listen-address",
        kind="text",
        default="127.0.0.1",
        meaning="The address the ports listen on (`0.0.0.0` for every interface).",
    ),
    OptionSpec(
        name="advertise-host",
        kind="text",
        shown="the listen address",
        meaning="The host the lease tells others (peers, proxies, clients) to reach this "
        "server at: a server behind NAT, a load balancer or a relay; not in proxy mode. "
        "A wildcard listen address is told as the host name.",
    ),
    OptionSpec(
        name="advertise-port",
        kind="port",
        shown="`port`",
        meaning="The client port the lease tells others; not in proxy mode.",
    ),
    OptionSpec(
        name="advertise-management-port",
        kind="port",
        shown="`management-port`",
        meaning="The management port told to a following backup; not in proxy mode.",
    ),
    OptionSpec(
        name="no-default-access",
        kind="boolean",
        default="false",
        meaning="`true`: a Person created on this server starts with no rights until "
        'granted some (the seed\'s "No Default Access for New Users"); `false`: it starts '
        "with read on everything, granted in the name of its creator. Compared between "
        "primary and backup. See docs/protocol.md, Access control.",
    ),
    OptionSpec(
        name="http-port",
        kind="port",
        meaning="The health and metrics port, HTTP/1.1 on `listen-address`: `GET /primary` "
        "is 200 only while this server is a writable primary (503 otherwise), `GET /backup` "
        "200 only while it is a backup following the primary, `GET /health` 200 with role, "
        "epoch and serial as JSON, `GET /metrics` Prometheus text. For a load balancer's "
        "health check (HAProxy `option httpchk GET /primary`): a TCP check cannot tell a "
        "backup, which listens and refuses. No authentication: put it on an address only "
        "the checkers reach. See docs/protocol.md 10.19.",
    ),
    ENCRYPTION,
    TLS_TABLE,
    OptionSpec(
        name="encoding",
        kind="encoding",
        default="utf-8",
        meaning="Text encoding of configuration data (any encoding Python knows). Compared "
        "between primary and backup.",
    ),
    ADDP_TABLE,
)

#: ``[log]``.
LOG_TABLE = OptionTable.of(
    OptionSpec(
        name="verbose",
        kind="choice",
        default="standard",
        choices=VERBOSE_LEVELS,
        meaning="Which messages are written (see `docs/log-events.md`).",
    ),
    OptionSpec(
        name="all",
        kind="path",
        default="stderr",
        meaning="`stdout`, `stderr`, `syslog` (the local syslog or journald, facility "
        "`daemon`), or a log file (relative to this file's directory). A file moved away by "
        "logrotate is reopened, `copytruncate` works too, and SIGHUP reopens it at once.",
    ),
    OptionSpec(
        name="format",
        kind="choice",
        default="text",
        choices=("text", "json"),
        meaning="`text`: dated lines; `json`: one object per line.",
    ),
    OptionSpec(
        name="segment",
        kind="size",
        default="false",
        low=LOG_SEGMENT_MIN,
        high=LOG_SEGMENT_MAX,
        meaning="A log file is rotated when it reaches this size (`N KB`, `N MB`, `N GB`; a "
        "plain number is KB, as in Genesys). `false`: never; the file is then reopened when "
        "logrotate moves it away.",
    ),
    OptionSpec(
        name="expire",
        kind="integer",
        unit="files",
        default="10",
        low=1,
        high=1000,
        meaning="How many rotated files are kept.",
    ),
)

#: ``[history-log]``.
HISTORY_TABLE = OptionTable.of(
    OptionSpec(
        name="expiration",
        kind="integer",
        unit="days",
        default="30",
        low=1,
        high=30,
        meaning="Days a change stays in the History Log.",
    ),
    OptionSpec(
        name="max-records",
        kind="integer",
        unit="records",
        default="1000",
        low=1,
        high=1000,
        meaning="Most changes one restore may return.",
    ),
    OptionSpec(
        name="audit-expiration",
        kind="integer",
        unit="days",
        default="30",
        low=1,
        high=30,
        meaning="Kept from the seed: days audit records are kept.",
    ),
    OptionSpec(
        name="audit-max-records",
        kind="integer",
        unit="records",
        default="1000",
        low=1,
        high=1000,
        meaning="Kept from the seed: most audit records one request may return.",
    ),
)
