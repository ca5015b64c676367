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

from addp.tls_contexts import TlsFileError, server_context

from .agent import DEFAULT_PORT

#: Options of the agent's section.
OPTIONS = frozenset(
    {
        "port",
        "agent-secret",
        "state-dir",
        "listen-address",
        "host-name",
        "encryption",
        "tls-certificate",
        "tls-private-key",
        "tls-ca",
        "tls-client-certificates",
    }
)
_TLS_OPTIONS = ("tls-certificate", "tls-private-key", "tls-ca", "tls-client-certificates")
#: Genesys: an LCA port below this falls back to the default.
LOWEST_PORT = 2000


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
    text = own.get("port", str(DEFAULT_PORT)).strip()
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
    state = Path(own.get("state-dir", "lca-state").strip() or "lca-state")
    context = _tls(own, file, error)
    return AgentSettings(
        file=file,
        section=section,
        port=port,
        secret=secret,
        state_dir=state if state.is_absolute() else (file.parent / state).resolve(),
        listen_address=own.get("listen-address", "127.0.0.1").strip() or "127.0.0.1",
        host_name=own.get("host-name", "").strip() or socket.gethostname(),
        warnings=tuple(warnings),
        ssl_context=context,
    )


def _tls(
    own: configparser.SectionProxy, file: Path, error: Callable[[str, str], AgentConfigError]
) -> ssl.SSLContext | None:
    """The port's TLS context from ``encryption`` and the ``tls-*`` options."""
    encryption = own.get("encryption", "false").strip().lower()
    if encryption not in ("true", "false", "yes", "no", "1", "0"):
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
    mode = own.get("tls-client-certificates", "none").strip().lower()
    if mode not in ("none", "optional", "required"):
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
