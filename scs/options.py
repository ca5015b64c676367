"""The option tables of ``scs.conf``: ``[scs]`` and a supervised server's section.

What :mod:`scs.config` accepts and where its defaults and bounds come from
(:class:`~addp.optionspec.OptionTable`); the host sections' table is in
:mod:`scs.hosts`, the supervisor lease's options in :mod:`scs.redundancy`.
``docs/configuration.md`` is generated from them (``python -m scs.reference``).
"""

from __future__ import annotations

import dataclasses

from addp.optionspec import ADDP_TABLE, OptionSpec, OptionTable
from confserv.config.server_options import LOG_SEGMENT_MAX, LOG_SEGMENT_MIN, VERBOSE_LEVELS
from confserv.config.tls import ENCRYPTION, TLS_TABLE

from .redundancy import REDUNDANCY_TABLE

__all__ = ["SCS_TABLE", "SERVER_TABLE"]

#: ``[scs]``: the supervisor itself.
SCS_TABLE = OptionTable.of(
    OptionSpec(
        name="control-port",
        kind="port",
        meaning="The control port (on 127.0.0.1) that `scs status`, `switchover`, `pause`, "
        "`resume`, `start`, `stop` and `restart` talk to; none: those commands cannot reach "
        "this supervisor.",
    ),
    OptionSpec(
        name="control-secret",
        kind="secret",
        shown="none (required with `control-port`)",
        meaning="The control port's secret (`cfgha-ctl-v2`, mutual challenge-response); use "
        "a secret of its own, not the management secret.",
    ),
    OptionSpec(
        name="auth-timeout",
        kind="seconds",
        default="5",
        low=0.0,
        high=3600.0,
        above_low=True,
        meaning="Seconds a control connection has to authenticate before it is closed.",
    ),
    OptionSpec(
        name="log-format",
        kind="choice",
        default="text",
        choices=("text", "json"),
        meaning="The event log's lines: `text` (dated lines) or `json` (one object per "
        "line; also `scs --json-log`).",
    ),
    OptionSpec(
        name="verbose",
        kind="choice",
        default="standard",
        choices=VERBOSE_LEVELS,
        meaning="Which events are written, as a server's `[log] verbose`.",
    ),
    OptionSpec(
        name="log-file",
        kind="path",
        shown="`<state-dir>/scs.log`",
        meaning="The event log on disk too, for `scs events [-f]` from another shell "
        "(relative to this file's directory); `false` for none.",
    ),
    OptionSpec(
        name="log-segment",
        kind="size",
        default="10 MB",
        low=LOG_SEGMENT_MIN,
        high=LOG_SEGMENT_MAX,
        meaning="`log-file` is rotated when it reaches this size (`N KB`, `N MB`, `N GB`; a "
        "plain number is KB). `false`: never; the file is then reopened when logrotate "
        "moves it away.",
    ),
    OptionSpec(
        name="log-expire",
        kind="integer",
        unit="files",
        default="5",
        low=1,
        high=1000,
        meaning="How many rotated files of `log-file` are kept.",
    ),
    OptionSpec(
        name="history-max",
        kind="integer",
        unit="records",
        default="1000",
        low=1,
        high=100_000,
        meaning="How many failovers `<state-dir>/failovers.jsonl` keeps for `scs history`.",
    ),
    OptionSpec(
        name="status-interval",
        kind="seconds",
        default="1",
        low=0.05,
        high=3600.0,
        meaning="Seconds between refreshes of the live status table; a server that pushes "
        "nothing for 5 times this is asked for its status.",
    ),
    OptionSpec(
        name="state-dir",
        kind="path",
        default="scs-state",
        meaning="The records of the processes of the supervisor's own host, relative to this "
        "file's directory (`make run` uses `run/scs-state`); also the failover history and "
        "the default `log-file`. Keep it on a local disk.",
    ),
    OptionSpec(
        name="http-port",
        kind="port",
        meaning="HTTP for machines on `http-address`: `GET /metrics` (Prometheus text) and "
        "`GET /status` (the `scs status --json` document). No authentication.",
    ),
    OptionSpec(
        name="http-address",
        kind="text",
        default="127.0.0.1",
        meaning="The address `http-port` listens on; keep it one only the scrapers reach.",
    ),
    dataclasses.replace(
        ENCRYPTION,
        meaning="`true`: the control port speaks TLS only, and the supervisor's links to "
        "every server and agent use TLS too (unless their section says `encryption = "
        "false`). Needs `tls-certificate`.",
    ),
    dataclasses.replace(
        TLS_TABLE["tls-certificate"],
        shown="none (required with `encryption = true`)",
        meaning="PEM certificate chain of the control port; also the client certificate the "
        "supervisor presents to servers and agents. Relative to the file's directory.",
    ),
    TLS_TABLE["tls-private-key"],
    dataclasses.replace(
        TLS_TABLE["tls-ca"],
        meaning="CA file (PEM) that verifies the servers and agents (and control clients' "
        "certificates). With only the servers on TLS, `[scs]` needs just this (or the "
        "system's CAs).",
    ),
    dataclasses.replace(
        TLS_TABLE["tls-client-certificates"],
        meaning="Whether control clients present a certificate: `optional` (one sent must "
        "verify against `tls-ca`) or `required`. Needs `tls-ca`.",
    ),
    dataclasses.replace(
        TLS_TABLE["tls-server-name"],
        shown="`127.0.0.1`",
        meaning="The name the control port's certificate carries, for `scs status` and the "
        "other commands.",
    ),
    REDUNDANCY_TABLE,
)

#: A supervised server's section (``[confserv]``, ``[Backup CS]``, ``[proxy]``, ...).
SERVER_TABLE = OptionTable.of(
    OptionSpec(
        name="host",
        kind="text",
        default="127.0.0.1",
        meaning="The seed's: where the server runs. The name of a host section (`type = "
        "host`, below) puts it on that host; otherwise an address of the supervisor's own "
        "host.",
    ),
    OptionSpec(
        name="port",
        kind="port",
        shown="(required)",
        meaning="The seed's: the server's client port.",
    ),
    OptionSpec(
        name="name",
        kind="text",
        shown="the section's name",
        meaning="The seed's; accepted, not used.",
    ),
    OptionSpec(
        name="server",
        kind="section",
        shown="(required for a pair member)",
        meaning="The seed's: the section of the other member of the pair, which must name "
        "this one back. A proxy has none.",
    ),
    OptionSpec(
        name="type",
        kind="choice",
        default="pair",
        choices=("pair", "proxy"),
        meaning="`pair` (also `server`): a member of a warm-standby pair; `proxy`: a "
        "Configuration Server Proxy. (`type = host` makes the section a host, below.)",
    ),
    OptionSpec(
        name="pair",
        kind="text",
        shown="the first member's section",
        meaning="The pair's name in `scs status`, `scs switchover PAIR` and the events.",
    ),
    OptionSpec(
        name="management-port",
        kind="port",
        shown="(required)",
        meaning="The server's management port, which the supervisor watches and commands.",
    ),
    OptionSpec(
        name="management-secret",
        kind="secret",
        shown="(required)",
        meaning="The server's `management-secret`. The section must be named as the "
        "server's own section (`-s`): a management port that proves another name is "
        "refused.",
    ),
    OptionSpec(
        name="command",
        kind="command",
        shown="none (required with `autostart` or `autorestart`)",
        meaning="The command line that starts the server (split as a shell would, not run "
        "by one), from `working-directory`.",
    ),
    OptionSpec(
        name="working-directory",
        kind="path",
        default=".",
        meaning="Where `command` runs, relative to this file's directory (a path on the "
        "server's own host).",
    ),
    OptionSpec(
        name="autostart",
        kind="boolean",
        default="true",
        meaning="Start the server when the supervisor starts (unless it already runs: it is "
        "adopted).",
    ),
    OptionSpec(
        name="autorestart",
        kind="boolean",
        default="true",
        meaning="Restart the server when it dies (as backup).",
    ),
    OptionSpec(
        name="failover-wait",
        kind="seconds",
        default="0",
        low=0.0,
        high=3600.0,
        meaning="Genesys' disconnect-switchover-timeout: a link back within it cancels the "
        "failover of a silent primary.",
    ),
    OptionSpec(
        name="promote-retry",
        kind="seconds",
        default="0.1",
        low=0.01,
        high=60.0,
        meaning="Seconds between promotion attempts a backup refuses.",
    ),
    OptionSpec(
        name="restart-backoff",
        kind="seconds",
        default="0.5",
        low=0.0,
        high=3600.0,
        meaning="First delay before a restart, doubled at each consecutive one.",
    ),
    OptionSpec(
        name="restart-backoff-max",
        kind="seconds",
        shown="`30` (at least `restart-backoff`)",
        low=0.0,
        high=86400.0,
        range_shown="`restart-backoff` to 86400 s",
        meaning="The longest delay, and the pace of the retries past `restart-limit` (with "
        "alarm 40104).",
    ),
    OptionSpec(
        name="restart-limit",
        kind="integer",
        unit="restarts",
        default="5",
        low=1,
        high=1000,
        meaning="Most failed starts in `restart-window` before the slow retries.",
    ),
    OptionSpec(
        name="restart-window",
        kind="seconds",
        default="60",
        low=0.0,
        high=86400.0,
        above_low=True,
        meaning="Seconds over which `restart-limit` counts.",
    ),
    OptionSpec(
        name="restart-min-uptime",
        kind="seconds",
        default="2",
        low=0.0,
        high=86400.0,
        meaning="A server that served (primary, backup or proxy) this long was started "
        "successfully: its death starts the count of `restart-limit` again (supervisord's "
        "`startsecs`); one that dies before counts.",
    ),
    OptionSpec(
        name="stop-timeout",
        kind="seconds",
        default="10",
        low=0.0,
        high=3600.0,
        meaning="Seconds a server has to stop after SIGTERM before it is killed.",
    ),
    OptionSpec(
        name="fence-after",
        kind="seconds",
        shown="from the servers' lease (see below)",
        low=0.0,
        high=3600.0,
        meaning="Seconds after a silent primary was detected, while the backup still has not "
        "taken over, before the supervisor kills (fences) it; 0: never.",
    ),
    dataclasses.replace(
        ENCRYPTION,
        shown="`[scs] encryption`",
        meaning="The supervisor's link to the management port over TLS, with `[scs]`'s CA "
        "and client certificate.",
    ),
    dataclasses.replace(
        TLS_TABLE["tls-server-name"],
        shown="the server's host",
        meaning="The name the server's certificate carries (only with `encryption`).",
    ),
    ADDP_TABLE,
)
