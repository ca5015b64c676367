"""The agent's configuration file, in the seed's format (``[section]``, ``option = value``).

::

    [lca]
    port = 4999                 # the Genesys default; below 2000 falls back to 4999
    agent-secret = ...          # what supervisors must prove (required)
    state-dir = lca-state       # the agent's records (relative to this file)
    listen-address = 127.0.0.1
    host-name = hostA           # the identity supervisors expect (default: this host's name)
    encryption = true           # TLS on the port, with:
    tls-certificate = agent.pem # its certificate chain (and key, or tls-private-key)
    tls-ca = ca.pem             # the CA of supervisors' certificates, with
    tls-client-certificates = required   # none (default), optional or required

Every problem is one :class:`AgentConfigError` line naming the file, the
section and the option. The agent uses only :mod:`addp`, so it reads the
format with the standard library's ``configparser`` rather than the
Configuration Server's reader.
"""

from __future__ import annotations

import configparser
import os
import socket
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from addp.optionspec import OptionSpec, OptionTable
from addp.tls_contexts import TlsFileError, server_context

from .agent import DEFAULT_PORT

#: Genesys: an LCA port below this falls back to the default.
LOWEST_PORT = 2000

#: Options of the agent's section.
TABLE = OptionTable.of(
    OptionSpec(
        name="port",
        kind="port",
        default=str(DEFAULT_PORT),
        meaning=f"The agent's port. As in Genesys, a port below {LOWEST_PORT} falls back to "
        f"{DEFAULT_PORT} (one warning line).",
    ),
    OptionSpec(
        name="agent-secret",
        kind="secret",
        shown="(required)",
        meaning="What supervisors must prove (`cfgha-agent-v2`, mutual challenge-response). "
        "A file readable by its group or others is warned about.",
    ),
    OptionSpec(
        name="state-dir",
        kind="path",
        default="lca-state",
        meaning="Where the agent records the processes it started and how they ended "
        "(relative to the file). Keep it on a local disk; it survives the agent.",
    ),
    OptionSpec(
        name="listen-address",
        kind="text",
        default="127.0.0.1",
        meaning="The address the port listens on.",
    ),
    OptionSpec(
        name="host-name",
        kind="text",
        shown="this host's name",
        meaning="The identity the agent proves; supervisors expect the name of its host "
        "section in `scs.conf`.",
    ),
    OptionSpec(
        name="encryption",
        kind="boolean",
        default="false",
        choices=("true", "false", "yes", "no", "1", "0"),
        meaning="`true`: the port speaks TLS only (needs `tls-certificate`).",
    ),
    OptionSpec(
        name="tls-certificate",
        kind="path",
        shown="none (required with `encryption = true`)",
        meaning="The agent's PEM certificate chain (relative to the file); its key here or "
        "in `tls-private-key`. Every `tls-*` option is refused with `encryption = false`.",
    ),
    OptionSpec(
        name="tls-private-key",
        kind="path",
        shown="in `tls-certificate`'s file",
        meaning="PEM private key of the certificate.",
    ),
    OptionSpec(
        name="tls-ca",
        kind="path",
        meaning="The CA (PEM) of the supervisors' client certificates.",
    ),
    OptionSpec(
        name="tls-client-certificates",
        kind="choice",
        default="none",
        choices=("none", "optional", "required"),
        meaning="Whether supervisors present a certificate signed by `tls-ca`: `optional` or "
        "`required` (these need `tls-ca`).",
    ),
)
OPTIONS: frozenset[str] = TABLE.names
_TLS_OPTIONS = ("tls-certificate", "tls-private-key", "tls-ca", "tls-client-certificates")


class AgentConfigError(Exception):
    """The agent's file cannot be used; ``str()`` is one line saying where and why."""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """What one agent reads from its file."""

    file: Path
    section: str
    port: int
    secret: str
    state_dir: Path
    listen_address: str
    host_name: str
    warnings: tuple[str, ...] = ()
    #: ``encryption = true``: the port's TLS context; None: plain TCP.
    ssl_context: ssl.SSLContext | None = None


def load_agent_settings(file: Path, section: str = "lca") -> AgentSettings:
    """Read and check ``section`` of ``file``.

    Raises:
        AgentConfigError: one line naming the file, section and option.
    """
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        with file.open(encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise AgentConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise AgentConfigError(
            f"{file}: not in the [section] / option = value format: {first}"
        ) from None
    if not parser.has_section(section):
        raise AgentConfigError(f"{file}: no section [{section}]")
    own = parser[section]

    def error(option: str, detail: str) -> AgentConfigError:
        return AgentConfigError(f"{file}: [{section}] {option}: {detail}")

    for option in own:
        if option not in OPTIONS:
            raise error(option, f"unknown option (known: {', '.join(sorted(OPTIONS))})")
    warnings: list[str] = []
    text = own.get("port", _default("port")).strip()
    if not text.isdigit() or len(text) > 5 or not 0 < int(text) < 65536:
        raise error("port", f"{text[:20]!r} is not a port number (1 to 65535)")
    port = int(text)
    if port < LOWEST_PORT:
        warnings.append(f"[{section}] port {port} is below {LOWEST_PORT}: using {DEFAULT_PORT}")
        port = DEFAULT_PORT
    secret = own.get("agent-secret", "").strip()
    if not secret:
        raise error("agent-secret", "missing (what supervisors must prove; use a long random one)")
    if os.stat(file).st_mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"warning: {file} holds agent-secret and is readable by others: run 'chmod 600 {file}'"
        )
    state = Path(own.get("state-dir", "").strip() or _default("state-dir"))
    context = _tls(own, file, error)
    return AgentSettings(
        file=file,
        section=section,
        port=port,
        secret=secret,
        state_dir=state if state.is_absolute() else (file.parent / state).resolve(),
        listen_address=own.get("listen-address", "").strip() or _default("listen-address"),
        host_name=own.get("host-name", "").strip() or socket.gethostname(),
        warnings=tuple(warnings),
        ssl_context=context,
    )


def _default(option: str) -> str:
    """The default of ``option`` as its table entry writes it."""
    default = TABLE[option].default
    assert default is not None, option
    return default


def _tls(
    own: configparser.SectionProxy, file: Path, error: Callable[[str, str], AgentConfigError]
) -> ssl.SSLContext | None:
    """The port's TLS context from ``encryption`` and the ``tls-*`` options."""
    encryption = own.get("encryption", _default("encryption")).strip().lower()
    if encryption not in TABLE["encryption"].choices:
        raise error("encryption", f"{encryption[:20]!r} is not true or false")
    if encryption in ("false", "no", "0"):
        for option in _TLS_OPTIONS:
            if option in own:
                raise error(option, "not used with encryption = false")
        return None

    def path(option: str) -> Path | None:
        text = own.get(option, "").strip()
        return None if not text else (file.parent / text).resolve()

    certificate = path("tls-certificate")
    if certificate is None:
        raise error("tls-certificate", "missing (encryption = true needs the agent's certificate)")
    mode = own.get("tls-client-certificates", "").strip().lower()
    mode = mode or _default("tls-client-certificates")
    if mode not in TABLE["tls-client-certificates"].choices:
        raise error("tls-client-certificates", f"{mode[:20]!r} is not none, optional or required")
    ca = path("tls-ca")
    if mode != "none" and ca is None:
        raise error("tls-client-certificates", f"{mode} needs tls-ca (the supervisors' CA)")
    try:
        return server_context(
            certificate,
            path("tls-private-key"),
            ca=ca,
            client_certificates="required"
            if mode == "required"
            else ("optional" if mode == "optional" else "none"),
        )
    except TlsFileError as exc:
        names = {"certificate": "tls-certificate", "private key": "tls-private-key"}
        raise error(names.get(exc.what, "tls-ca"), str(exc)) from None
