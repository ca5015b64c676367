"""The agent's configuration file, in the seed's format (``[section]``, ``option = value``).

::

    [lca]
    port = 4999                 # the Genesys default; below 2000 falls back to 4999
    agent-secret = ...          # what supervisors must prove (required)
    state-dir = lca-state       # the agent's records (relative to this file)
    listen-address = 127.0.0.1
    host-name = hostA           # the identity supervisors expect (default: this host's name)

Every problem is one :class:`AgentConfigError` line naming the file, the
section and the option. The agent uses only :mod:`addp`, so it reads the
format with the standard library's ``configparser`` rather than the
Configuration Server's reader.
"""

from __future__ import annotations

import configparser
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from .agent import DEFAULT_PORT

#: Options of the agent's section.
OPTIONS = frozenset({"port", "agent-secret", "state-dir", "listen-address", "host-name"})
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
    return AgentSettings(
        file=file,
        section=section,
        port=port,
        secret=secret,
        state_dir=state if state.is_absolute() else (file.parent / state).resolve(),
        listen_address=own.get("listen-address", "127.0.0.1").strip() or "127.0.0.1",
        host_name=own.get("host-name", "").strip() or socket.gethostname(),
        warnings=tuple(warnings),
    )
