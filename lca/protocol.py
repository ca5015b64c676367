"""The agent's requests, checked into typed commands: pure.

Requests are maps ``{"op": <name>, "id": <int>, "epoch": <int>, ...}`` in ADDP
MESSAGE frames, as on the Configuration Server's ports (``docs/protocol.md``).
``epoch`` is the supervisor epoch of the sender (issue 14: an agent refuses a
command from an older supervisor epoch than the newest it has seen). Anything
malformed is one :class:`AgentRequestError` naming the field and what is
wrong, with peer text cut and escaped; it never raises anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from addp import peer_repr

#: What an agent's client may ask.
OPS = ("start", "stop", "signal", "list", "ack")
#: Longest process name (it names files in the state directory).
MAX_NAME = 100
#: Most arguments, environment entries, and the longest one of either.
MAX_ITEMS, MAX_TEXT = 1000, 64 * 1024
#: Signals a supervisor may send through an agent (SIGKILL is ``stop`` or fencing).
SIGNALS = ("SIGTERM", "SIGKILL", "SIGSTOP", "SIGCONT", "SIGHUP", "SIGINT", "SIGUSR1", "SIGUSR2")


class AgentRequestError(Exception):
    """A request the agent does not carry out; ``code`` goes into the answer."""

    code = "bad-request"


class StaleSupervisorError(AgentRequestError):
    """The request comes from an older supervisor epoch than one already seen."""

    code = "stale-supervisor"


@dataclass(frozen=True, slots=True)
class Start:
    """Start ``argv`` as ``name`` in ``cwd``, output appended to ``log``; ``env``
    replaces the environment when given (None: the agent's own)."""

    name: str
    argv: tuple[str, ...]
    cwd: str
    log: str
    env: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop process ``pid`` of ``name``: SIGCONT, SIGTERM, SIGKILL after ``timeout`` s."""

    name: str
    pid: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Signal:
    """Send signal ``signal`` (a name of :data:`SIGNALS`) to process ``pid`` of ``name``."""

    name: str
    pid: int
    signal: str


@dataclass(frozen=True, slots=True)
class List:
    """What runs under this agent, and the exits not acknowledged yet."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The supervisor has the exit of process ``pid`` of ``name``: forget it."""

    name: str
    pid: int


Command = Start | Stop | Signal | List | Ack


@dataclass(frozen=True, slots=True)
class Request:
    """A checked request: its id, the sender's supervisor epoch and the command."""

    id: int
    epoch: int
    command: Command


def _field(msg: Mapping[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in msg:
        if default is ...:
            raise AgentRequestError(f"missing {name!r}")
        return default
    value = msg[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AgentRequestError(f"{name!r} must be {kind.__name__}, not {peer_repr(value)}")
    return value


def _text(msg: Mapping[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value: str = _field(msg, name, str)
    if not value or len(value) > limit or "\0" in value:
        raise AgentRequestError(f"{name!r} must be 1 to {limit} characters without NUL")
    return value


def _name(msg: Mapping[str, Any]) -> str:
    name = _text(msg, "name", MAX_NAME)
    if name.startswith(".") or "/" in name or not name.isprintable():
        raise AgentRequestError(f"'name' {peer_repr(name)} cannot name a file")
    return name


def _texts(msg: Mapping[str, Any], name: str) -> tuple[str, ...]:
    items = _field(msg, name, list)
    if not items or len(items) > MAX_ITEMS:
        raise AgentRequestError(f"{name!r} must hold 1 to {MAX_ITEMS} items")
    for item in items:
        if not isinstance(item, str) or len(item) > MAX_TEXT or "\0" in item:
            raise AgentRequestError(f"{name!r} items must be strings without NUL")
    return tuple(items)


def _env(msg: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    env = _field(msg, "env", dict, None)
    if env is None:
        return None
    if len(env) > MAX_ITEMS:
        raise AgentRequestError(f"'env' must hold at most {MAX_ITEMS} entries")
    out = []
    for key, value in env.items():
        ok = isinstance(key, str) and isinstance(value, str) and key and "=" not in key
        if not ok or "\0" in key or "\0" in value or len(key) + len(value) > MAX_TEXT:
            raise AgentRequestError(f"'env' entry {peer_repr(key)} is not NAME=text")
        out.append((key, value))
    return tuple(sorted(out))


def _pid(msg: Mapping[str, Any]) -> int:
    pid: int = _field(msg, "pid", int)
    if pid <= 0:
        raise AgentRequestError(f"'pid' must be positive, not {pid}")
    return pid


def parse_request(msg: Any) -> Request:
    """Check one request.

    Raises:
        AgentRequestError: what is wrong, in one line.
    """
    if not isinstance(msg, dict):
        raise AgentRequestError(f"a request must be a map, not {type(msg).__name__}")
    rid = _field(msg, "id", int)
    op = msg.get("op")
    if op not in OPS:
        raise AgentRequestError(f"unknown op {peer_repr(op)} (known: {', '.join(OPS)})")
    epoch: int = _field(msg, "epoch", int)
    if epoch < 0:
        raise AgentRequestError("'epoch' must not be negative")
    command: Command
    if op == "start":
        command = Start(
            _name(msg), _texts(msg, "argv"), _text(msg, "cwd"), _text(msg, "log"), _env(msg)
        )
    elif op == "stop":
        timeout = _field(msg, "timeout", float, 10.0)
        if not 0.0 <= timeout <= 3600.0:
            raise AgentRequestError("'timeout' must be 0 to 3600 seconds")
        command = Stop(_name(msg), _pid(msg), timeout)
    elif op == "signal":
        which = _field(msg, "signal", str)
        if which not in SIGNALS:
            raise AgentRequestError(
                f"'signal' {peer_repr(which)} is not one of {', '.join(SIGNALS)}"
            )
        command = Signal(_name(msg), _pid(msg), which)
    elif op == "ack":
        command = Ack(_name(msg), _pid(msg))
    else:
        command = List()
    return Request(rid, epoch, command)
