"""``scs.conf``: the servers a Solution Control Server supervises.

The seed's format: one section per server with ``host``, ``port``, ``name``
and ``server = <peer section>``, extended with what supervising needs (see
:data:`SERVER_OPTIONS`), plus an ``[scs]`` section for the supervisor itself.
A section with ``type = proxy`` is a Configuration Server Proxy (no peer).
Everything is checked at load: unknown keys, peers that do not link back,
duplicate ports; the first problem is one :class:`~confserv.config.settings.ConfigError`
line naming the file, section and key.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from addp import OPTION_NAMES, AddpOptions, OptionError
from confserv.config.permissions import warn_if_exposed
from confserv.config.settings import ConfigError, Section, read_sections
from confserv.config.tls import TlsSettings, parse_tls
from confserv.wire.tls import ClientTls

from .hosts import (
    HostSpec,
    check_own_hosts,
    database_engine,
    find_host,
    is_host_section,
    parse_host,
)
from .options import SCS_TABLE, SERVER_TABLE
from .redundancy import OnStop, RedundancySpec, parse_redundancy

#: The supervisor's own section.
SCS_SECTION = "scs"

#: Options of ``[scs]`` (the table: :data:`scs.options.SCS_TABLE`).
SCS_OPTIONS: frozenset[str] = SCS_TABLE.names

#: Options of a server's section (the table: :data:`scs.options.SERVER_TABLE`).
SERVER_OPTIONS: frozenset[str] = SERVER_TABLE.names
_T = SERVER_TABLE
_OWN = SCS_TABLE

_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a dead server is restarted.

    Attributes:
        backoff: first delay, seconds; doubled at each consecutive restart.
        backoff_max: the delay never exceeds this (also the slow-retry pace
            once the limit is reached).
        limit: at most this many restarts in ``window`` seconds; past it, an
            alarm and slow retries at ``backoff_max`` (never a silent give-up).
        window: seconds, see ``limit``.
        min_uptime: a server that served this long was started successfully: its
            death does not count towards ``limit`` (the count starts again).
    """

    backoff: float = 0.5
    backoff_max: float = 30.0
    limit: int = 5
    window: float = 60.0
    min_uptime: float = 2.0


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One supervised server, as its section says.

    ``fence_after`` is ``fence-after`` as written (None: not set). A silent
    primary that still blocks the failover is killed (fenced) that many
    seconds after its silence was detected, 0 never. Not set, it follows from
    the servers' lease (:func:`scs.proof.fence_delay`): on SQLite, whose
    servers always share the supervisor's host and where a primary stopped
    inside a transaction keeps the database's write lock, ``lease-ttl``
    seconds (as the servers report it; at least ``failover-wait``), so such a
    primary is failed over within ``lease-ttl`` + 2 x ``addp-timeout`` (the
    detection) + the kill and the forced promotion; on PostgreSQL, or while
    the servers do not report their engine and lease, 10 s.
    """

    section: str
    kind: Literal["pair", "proxy"]
    host: str
    port: int
    name: str
    peer: str | None
    pair: str | None
    management_port: int
    management_secret: str
    command: tuple[str, ...]
    working_directory: Path
    autostart: bool
    autorestart: bool
    addp: AddpOptions
    failover_wait: float
    promote_retry: float
    restart: RestartPolicy
    stop_timeout: float
    fence_after: float | None = None
    #: ``encryption``: how the supervisor reaches the management port over TLS
    #: (``[scs]``'s CA and certificate, ``tls-server-name``); None: plain TCP.
    tls: ClientTls | None = None
    #: The host section (:class:`scs.hosts.HostSpec`) whose agent runs it; None: the
    #: supervisor's own host.
    machine: str | None = None


@dataclass(frozen=True, slots=True)
class PairSpec:
    """A warm-standby pair: its name and its two members' sections (file order)."""

    name: str
    members: tuple[str, str]


@dataclass(frozen=True, slots=True)
class ScsSettings:
    """Everything ``scs -f`` reads."""

    file: Path
    control_port: int | None
    control_secret: str | None
    #: ``auth-timeout``: seconds a control connection has to authenticate.
    auth_timeout: float
    log_format: Literal["text", "json"]
    verbose: str
    status_interval: float
    servers: dict[str, ServerSpec]
    pairs: tuple[PairSpec, ...]
    #: ``[scs] encryption`` and ``tls-*``: the control port's context (``tls.server``)
    #: and what ``scs status`` and the links to the servers use (``tls.client``).
    tls: TlsSettings = field(default_factory=TlsSettings)
    #: The ``type = host`` sections: where the servers run and where their agents listen.
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    #: ``state-dir``: the records of the processes of the supervisor's own host (default
    #: ``scs-state`` beside the file), kept so that a restarted supervisor finds them.
    state_dir: Path = Path("scs-state")
    #: ``[scs] database`` and the supervisor lease's timings (None: no election, one supervisor).
    redundancy: RedundancySpec | None = None
    #: ``[scs] on-stop``: stop the servers when ``scs`` stops, or leave them to a standby.
    on_stop: OnStop = "stop-servers"
    #: ``[scs] http-port`` and ``http-address`` (default 127.0.0.1): /metrics and /status.
    http_port: int | None = None
    http_address: str = "127.0.0.1"
    #: ``[scs] log-file``: the event log on disk too (``scs events``); default
    #: ``<state-dir>/scs.log``, None with ``log-file = false``.
    log_file: Path | None = None
    #: ``log-segment``: the file is rotated at this many bytes (None: never, reopened when
    #: moved away); ``log-expire``: rotated files kept.
    log_segment: int | None = 10 << 20
    log_expire: int = 5
    #: ``history-max``: failovers kept in ``<state-dir>/failovers.jsonl`` (``scs history``).
    history_max: int = 1000

    @property
    def control_tls(self) -> ClientTls | None:
        """How ``scs status`` reaches the control port: over TLS with ``[scs] encryption``."""
        return self.tls.client if self.tls.server is not None else None

    @property
    def proxies(self) -> tuple[ServerSpec, ...]:
        """The proxies, in file order."""
        return tuple(s for s in self.servers.values() if s.kind == "proxy")

    def find_pair(self, name: str) -> PairSpec:
        """The pair called ``name`` or having a member of that section."""
        for pair in self.pairs:
            if name == pair.name or name in pair.members:
                return pair
        known = ", ".join(p.name for p in self.pairs) or "none"
        raise ConfigError(self.file, f"no pair {name!r} (pairs: {known})")


def _boolean(sec: Section, option: str) -> bool:
    return sec.choice(_T[option], _BOOLEANS)


def _server(path: Path, base: Path, name: str, options: dict[str, str]) -> ServerSpec:
    sec = Section(path, name, options)
    sec.check_known(SERVER_OPTIONS)
    sec.choice("encryption", _BOOLEANS, False)  # checked here, used by _with_tls
    kinds: dict[str, Literal["pair", "proxy"]] = {
        "pair": "pair",
        "proxy": "proxy",
        "server": "pair",
    }
    kind = sec.choice(_T["type"], kinds)
    port = sec.port("port")
    if port is None:
        raise sec.error("port", "missing (the server's client port)")
    mport = sec.port("management-port")
    if mport is None:
        raise sec.error("management-port", "missing (the supervisor watches this port)")
    secret = sec.text("management-secret")
    if secret is None:
        raise sec.error("management-secret", "missing (the management port needs it)")
    peer = sec.text("server")
    if kind == "proxy" and peer is not None:
        raise sec.error("server", "a proxy has no peer (type = proxy)")
    if kind == "pair" and peer is None:
        raise sec.error("server", "missing (names the peer's section of the pair)")
    try:
        addp = AddpOptions.from_mapping(
            {k: v for k in OPTION_NAMES if (v := sec.text(k)) is not None}
        )
    except OptionError as err:
        raise sec.error(err.option, str(err).removeprefix(f"{err.option}: ")) from None
    command_text = sec.text("command")
    try:
        command = tuple(shlex.split(command_text)) if command_text else ()
    except ValueError as err:
        raise sec.error("command", f"cannot split {command_text!r}: {err}") from None
    autostart = _boolean(sec, "autostart")
    autorestart = _boolean(sec, "autorestart")
    if (autostart or autorestart) and not command:
        raise sec.error("command", "missing (needed to start the server: autostart/autorestart)")
    workdir = Path(sec.string(_T["working-directory"]) or ".")
    backoff = sec.seconds(_T["restart-backoff"])
    policy = RestartPolicy(
        backoff=backoff,
        backoff_max=sec.seconds(_T["restart-backoff-max"], max(30.0, backoff), low=backoff),
        limit=sec.integer(_T["restart-limit"]),
        window=sec.seconds(_T["restart-window"]),
        min_uptime=sec.seconds(_T["restart-min-uptime"]),
    )
    return ServerSpec(
        section=name,
        kind=kind,
        host=sec.string(_T["host"]) or "127.0.0.1",
        port=port,
        name=sec.text("name") or name,
        peer=peer,
        pair=sec.text("pair"),
        management_port=mport,
        management_secret=secret,
        command=command,
        working_directory=workdir if workdir.is_absolute() else (base / workdir).resolve(),
        autostart=autostart,
        autorestart=autorestart,
        addp=addp,
        failover_wait=sec.seconds(_T["failover-wait"]),
        promote_retry=sec.seconds(_T["promote-retry"]),
        restart=policy,
        stop_timeout=sec.seconds(_T["stop-timeout"]),
        fence_after=None
        if sec.text("fence-after") is None
        else sec.seconds(_T["fence-after"], 0.0),
    )


def load_scs_settings(file: Path | str) -> ScsSettings:
    """Read and check ``scs.conf``.

    Raises:
        ConfigError: the first problem, naming the file, section and key.
    """
    path = Path(file)
    sections = read_sections(path)
    base = path.resolve().parent
    own = Section(path, SCS_SECTION, sections.get(SCS_SECTION, {}))
    own.check_known(SCS_OPTIONS)
    control_port = own.port("control-port")
    control_secret = own.text("control-secret")
    if control_port is not None and control_secret is None:
        raise own.error("control-secret", "missing (the control port needs it)")
    redundancy, on_stop = parse_redundancy(path, own, sections, base)
    others = {SCS_SECTION} | ({redundancy.database.section} if redundancy else set())
    hosts = {
        name: parse_host(path, name, options)
        for name, options in sections.items()
        if name not in others and is_host_section(options)
    }
    check_own_hosts(path, hosts)
    servers = {
        name: _on_host(_server(path, base, name, options), hosts)
        for name, options in sections.items()
        if name not in others and not is_host_section(options)
    }
    if not servers:
        raise ConfigError(path, "no server sections: nothing to supervise")
    pairs: list[PairSpec] = []
    for spec in servers.values():
        if spec.kind == "pair" and spec.peer not in servers:
            sec = Section(path, spec.section, sections[spec.section])
            raise sec.error("server", f"no section [{spec.peer}] for the peer")
    for spec in servers.values():
        if spec.kind != "pair":
            continue
        assert spec.peer is not None
        sec = Section(path, spec.section, sections[spec.section])
        other = servers[spec.peer]
        if other.peer != spec.section:
            raise sec.error(
                "server",
                f"[{spec.peer}] does not link back (its server is {other.peer!r}, "
                f"not {spec.section!r})",
            )
        if other.section == spec.section:
            raise sec.error("server", "a server cannot be its own peer")
        if not any(spec.section in p.members for p in pairs):
            name = spec.pair or other.pair or spec.section
            pairs.append(PairSpec(name=name, members=(spec.section, other.section)))
            if spec.machine != other.machine:
                _check_shared_database(sec, spec, other)
    seen: dict[tuple[str, int], tuple[str, str]] = {}
    for spec in servers.values():
        for key, port in (("port", spec.port), ("management-port", spec.management_port)):
            where = (spec.host, port)
            if where in seen:
                first = seen[where]
                raise ConfigError(
                    path, f"{port} is also [{first[0]}] {first[1]}", spec.section, key
                )
            seen[where] = (spec.section, key)
    if control_port is not None and ("127.0.0.1", control_port) in seen:
        first = seen[("127.0.0.1", control_port)]
        raise own.error("control-port", f"{control_port} is also [{first[0]}] {first[1]}")
    # one warning line when others can read the secrets in the file
    holds = ["control-secret"] if control_secret else []
    holds += ["management-secret"] if any(s.management_secret for s in servers.values()) else []
    holds += ["password"] if redundancy is not None and redundancy.database.password else []
    warn_if_exposed(path, holds)
    tls, servers, hosts = _with_tls(path, base, own, sections, servers, hosts)
    return ScsSettings(
        file=path,
        control_port=control_port,
        control_secret=control_secret,
        auth_timeout=own.seconds(_OWN["auth-timeout"]),
        log_format=own.choice(_OWN["log-format"], {"text": "text", "json": "json"}),
        verbose=own.choice(_OWN["verbose"], {w: w for w in _OWN["verbose"].choices}),
        status_interval=own.seconds(_OWN["status-interval"]),
        servers=servers,
        pairs=tuple(pairs),
        tls=tls,
        hosts=hosts,
        state_dir=base / (own.string(_OWN["state-dir"]) or "scs-state"),
        redundancy=redundancy,
        on_stop=on_stop,
        http_port=own.port("http-port"),
        http_address=own.string(_OWN["http-address"]) or "127.0.0.1",
        log_file=_log_file(own, base, base / (own.string(_OWN["state-dir"]) or "scs-state")),
        log_segment=own.size(_OWN["log-segment"]),
        log_expire=own.integer(_OWN["log-expire"]),
        history_max=own.integer(_OWN["history-max"]),
    )


def _log_file(own: Section, base: Path, state_dir: Path) -> Path | None:
    """``[scs] log-file``: a path (against the file's directory), or ``false`` for none."""
    text = own.text("log-file")
    if text is None:
        return state_dir / "scs.log"
    if text.lower() in ("false", "no", "off", "none"):
        return None
    return base / text


def _on_host(spec: ServerSpec, hosts: dict[str, HostSpec]) -> ServerSpec:
    """``spec`` placed on the host section its ``host`` names: reached at the host's
    address, run through its agent (a host without one is the supervisor's own)."""
    host = find_host(hosts, spec.host)
    if host is None:
        return spec
    machine = host.name if host.has_agent else None
    return dataclasses.replace(spec, host=host.address, machine=machine)


def _check_shared_database(sec: Section, spec: ServerSpec, other: ServerSpec) -> None:
    """Two members on different hosts cannot share an SQLite file: refused, one line."""
    for member in (spec, other):
        if database_engine(member.command, member.working_directory) == "sqlite":
            where = member.machine or "the supervisor's host"
            raise sec.error(
                "host",
                f"[{spec.section}] and [{other.section}] run on different hosts but "
                f"[{member.section}] (on {where}) uses SQLite, a file of one host: put the "
                "pair on a shared PostgreSQL database (dbengine = postgre), or both on one host",
            )


def _with_tls(
    path: Path,
    base: Path,
    own: Section,
    sections: dict[str, dict[str, str]],
    servers: dict[str, ServerSpec],
    hosts: dict[str, HostSpec],
) -> tuple[TlsSettings, dict[str, ServerSpec], dict[str, HostSpec]]:
    """``[scs]``'s TLS (its certificates are needed once any link uses TLS) and each
    server's and agent's: ``encryption`` of its section, ``[scs] encryption`` by default."""
    control = own.choice(_OWN["encryption"], _BOOLEANS)
    wanted: dict[str, tuple[bool, str | None]] = {}
    linked = [*servers, *(name for name, host in hosts.items() if host.has_agent)]
    for name in linked:
        sec = Section(path, name, sections[name])
        on = sec.choice("encryption", _BOOLEANS, control)
        if not on and sec.text("tls-server-name") is not None:
            raise sec.error("tls-server-name", "not used when encryption is false")
        wanted[name] = (on, sec.text("tls-server-name"))
    tls = parse_tls(
        own, base, encryption=control or any(on for on, _ in wanted.values()), serve=control
    )
    if tls.client is None:
        return tls, servers, hosts
    context = tls.client.context

    def client(name: str) -> ClientTls | None:
        on, server_name = wanted.get(name, (False, None))
        return ClientTls(context, server_name) if on else None

    return (
        tls,
        {name: dataclasses.replace(spec, tls=client(name)) for name, spec in servers.items()},
        {name: dataclasses.replace(host, tls=client(name)) for name, host in hosts.items()},
    )
