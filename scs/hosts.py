"""The hosts of ``scs.conf``: where each server runs and where the agent of that host listens.

A section with ``type = host`` describes one computer, in the manner of a
Genesys Host object::

    [hostA]
    type = host
    address = 198.18.0.1        # how the supervisor reaches it (default: the section's name)
    agent-port = 4999           # its Local Control Agent (lca); the Genesys default
    agent-secret = ...          # what the agent makes the supervisor prove
    encryption = true           # the agent link over TLS ([scs]'s certificates; default
    tls-server-name = hostA     #   [scs] encryption), the name the agent's certificate carries

A server's ``host`` names such a section (by its name): the supervisor
then starts, stops and watches it through that host's agent, and reaches
its ports at the host's address. A server whose ``host`` is no host section,
or a host section without ``agent-secret``, is on the supervisor's own host,
served in-process by the same code. The agent's ``host-name`` (its
identity in the mutual authentication) must be the host section's name.

A pair whose members are on different hosts must share a PostgreSQL
database: SQLite is a file on one host, so such a pair on SQLite is refused
at load (when the server's own file can be read here), with one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from addp import AddpOptions, OptionError
from addp.optionspec import ADDP_TABLE, OptionSpec, OptionTable
from confserv.config.settings import ConfigError, Section, read_sections
from confserv.wire.tls import ClientTls

#: The Genesys default port of a Local Control Agent.
AGENT_PORT = 4999

#: Options of a host's section.
HOST_TABLE = OptionTable.of(
    OptionSpec(
        name="type",
        kind="choice",
        shown="(required: `host`)",
        choices=("host",),
        meaning="`host` makes the section a host, not a server.",
    ),
    OptionSpec(
        name="address",
        kind="text",
        shown="the section's name",
        meaning="Where the supervisor reaches the host: its agent and the ports of its servers.",
    ),
    OptionSpec(
        name="agent-port",
        kind="port",
        shown=f"`{AGENT_PORT}` (with `agent-secret`)",
        meaning="The port of the host's Local Control Agent (`lca`).",
    ),
    OptionSpec(
        name="agent-secret",
        kind="secret",
        meaning="What that agent makes the supervisor prove (`cfgha-agent-v2`). Without it "
        "(and without `agent-port`) the host is the supervisor's own: at most one such host "
        "section.",
    ),
    OptionSpec(
        name="encryption",
        kind="boolean",
        shown="`[scs] encryption`",
        meaning="The agent link over TLS, with `[scs]`'s CA and client certificate.",
    ),
    OptionSpec(
        name="tls-server-name",
        kind="text",
        shown="the address",
        meaning="The name the agent's certificate carries (only with `encryption`).",
    ),
    dataclasses.replace(
        ADDP_TABLE["addp-timeout"],
        default="1",
        meaning="The agent link always runs ADDP: a host that dies or is cut off is noticed "
        "within 2 x `addp-timeout`.",
    ),
    dataclasses.replace(ADDP_TABLE["addp-remote-timeout"], default="1"),
    ADDP_TABLE["addp-trace"],
)
HOST_OPTIONS: frozenset[str] = HOST_TABLE.names
#: The agent link always runs ADDP; these are its defaults (a lost host is seen in 2 s).
AGENT_ADDP = {
    "protocol": "addp",
    "addp-timeout": HOST_TABLE["addp-timeout"].default or "1",
    "addp-remote-timeout": HOST_TABLE["addp-remote-timeout"].default or "1",
}


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One host of ``scs.conf`` (see the module docstring).

    Attributes:
        name: the section's name, the identity its agent proves.
        address: where the supervisor reaches the host (its agent and its servers).
        agent_port: the agent's port; None for the supervisor's own host (no agent).
        agent_secret: what the agent asks the supervisor to prove.
        tls: how the agent link runs TLS (None: plain TCP).
        addp: the agent link's ADDP (always on: ``addp-timeout`` and
            ``addp-remote-timeout`` default to 1 s).
    """

    name: str
    address: str
    agent_port: int | None
    agent_secret: str | None
    tls: ClientTls | None = None
    addp: AddpOptions = field(default_factory=lambda: AddpOptions(True, 1.0, 1.0))

    @property
    def has_agent(self) -> bool:
        """Whether the host is reached through an agent (not the supervisor's own)."""
        return self.agent_port is not None


def is_host_section(options: dict[str, str]) -> bool:
    """Whether a section of ``scs.conf`` describes a host (``type = host``)."""
    return options.get("type", "").strip().lower() == "host"


def parse_host(path: Path, name: str, options: dict[str, str]) -> HostSpec:
    """One host section, checked (its TLS is filled in with ``[scs]``'s later).

    Raises:
        ConfigError: the first problem, naming the file, section and key.
    """
    sec = Section(path, name, options)
    sec.check_known(HOST_OPTIONS)
    secret = sec.text("agent-secret")
    port = sec.port("agent-port")
    if port is not None and secret is None:
        raise sec.error("agent-secret", "missing (the agent at agent-port needs it)")
    if secret is not None and port is None:
        port = AGENT_PORT
    for option in ("tls-server-name", "addp-timeout", "addp-remote-timeout", "addp-trace"):
        if secret is None and sec.text(option) is not None:
            raise sec.error(option, "not used without an agent (set agent-secret)")
    given = {
        k: v for k in ("addp-timeout", "addp-remote-timeout", "addp-trace") if (v := sec.text(k))
    }
    try:
        addp = AddpOptions.from_mapping({**AGENT_ADDP, **given})
    except OptionError as err:
        raise sec.error(err.option, str(err).removeprefix(f"{err.option}: ")) from None
    return HostSpec(
        name=name,
        address=sec.text("address") or name,
        agent_port=port,
        agent_secret=secret,
        addp=addp,
    )


def find_host(hosts: dict[str, HostSpec], host: str) -> HostSpec | None:
    """The host section a server's ``host`` names; None: it names none (it is then the
    address of a server on the supervisor's own host). By name only, never by
    address: two hosts may be reached at one address (loopback, a NAT)."""
    return hosts.get(host)


def check_own_hosts(path: Path, hosts: dict[str, HostSpec]) -> None:
    """At most one host may have no agent: the supervisor's own.

    Raises:
        ConfigError: two hosts without an agent.
    """
    own = [h.name for h in hosts.values() if not h.has_agent]
    if len(own) > 1:
        raise ConfigError(
            path,
            f"hosts {own[0]!r} and {own[1]!r} have no agent: only the supervisor's own host "
            "may be without one (give the other agent-secret and agent-port)",
            own[1],
            "agent-secret",
        )


def database_engine(command: tuple[str, ...], cwd: Path) -> str | None:
    """The ``dbengine`` of the database a ``confserv`` command line uses, read from its
    ``-c`` file when that file is readable here; None when it cannot be told."""
    try:
        args = list(command)
        section = _argument(args, ("-s", "--section"))
        file = _argument(args, ("-c", "--config"))
        if section is None or file is None:
            return None
        path = Path(file) if Path(file).is_absolute() else cwd / file
        sections = read_sections(path)
        database = sections.get(section, {}).get("server")
        if not database:
            return None
        engine = sections.get(database, {}).get("dbengine")
        return engine.strip().lower() if engine else None
    except (ConfigError, OSError, ValueError):
        return None  # the server itself will say what is wrong with its file


def _argument(args: list[str], flags: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        if arg in flags and i + 1 < len(args):
            return args[i + 1]
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None
