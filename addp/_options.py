"""ADDP options as an operator writes them, validated into a frozen value.

Owns the four options of a connection (``protocol``, ``addp-timeout``,
``addp-remote-timeout``, ``addp-trace``) with the value sets Genesys documents.
Knows nothing of sockets or configuration files: callers hand it strings.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import OptionError

#: Largest timeout an operator may set, in seconds (Genesys: 0 to 3600).
MAX_TIMEOUT = 3600.0

#: Option names this module understands, in the order the docs list them.
OPTION_NAMES = ("protocol", "addp-timeout", "addp-remote-timeout", "addp-trace")


class TraceMode(enum.Enum):
    """Where ADDP trace lines are written."""

    #: No trace lines.
    OFF = "off"
    #: In this side's log.
    LOCAL = "local"
    #: In the peer's log (the request travels in the handshake).
    REMOTE = "remote"
    #: In both logs.
    BOTH = "both"

    @property
    def local(self) -> bool:
        """Whether this side writes trace lines."""
        return self in (TraceMode.LOCAL, TraceMode.BOTH)

    @property
    def remote(self) -> bool:
        """Whether this side asks the peer to write trace lines."""
        return self in (TraceMode.REMOTE, TraceMode.BOTH)


_TRACE_WORDS = {
    "off": TraceMode.OFF,
    "false": TraceMode.OFF,
    "no": TraceMode.OFF,
    "local": TraceMode.LOCAL,
    "on": TraceMode.LOCAL,
    "true": TraceMode.LOCAL,
    "yes": TraceMode.LOCAL,
    "remote": TraceMode.REMOTE,
    "both": TraceMode.BOTH,
    "full": TraceMode.BOTH,
}


def parse_timeout(option: str, text: str) -> float:
    """Parse a timeout in seconds (fractions allowed, 0 turns it off, at most 3600)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise OptionError(option, f"{text!r} is not a number of seconds (0 to 3600)") from None
    if not math.isfinite(value) or value < 0 or value > MAX_TIMEOUT:
        raise OptionError(option, f"{text!r} is outside 0 to 3600 seconds")
    return value


def parse_trace(text: str) -> TraceMode:
    """Parse ``addp-trace``: off/false/no, local/on/true/yes, remote, both/full."""
    try:
        return _TRACE_WORDS[text.strip().lower()]
    except KeyError:
        words = ", ".join(sorted(_TRACE_WORDS))
        raise OptionError("addp-trace", f"{text!r} is not one of {words}") from None


def parse_protocol(text: str) -> bool:
    """Parse ``protocol``: ``addp`` turns ADDP on, ``default`` leaves it off."""
    word = text.strip().lower()
    if word == "addp":
        return True
    if word == "default":
        return False
    raise OptionError("protocol", f"{text!r} is not 'addp' or 'default'")


@dataclass(frozen=True, slots=True)
class AddpOptions:
    """The ADDP settings of one side of a connection.

    Attributes:
        enabled: ``protocol = addp``. When false this side neither polls nor
            asks the peer to poll; it still answers the peer's polls.
        timeout: ``addp-timeout``, seconds of silence before this side polls
            and then the wait for an answer; 0 turns this side's polling off.
        remote_timeout: ``addp-remote-timeout``, the timeout this side asks
            the peer to use; pushed to the peer in the handshake.
        trace: ``addp-trace``.
    """

    enabled: bool = False
    timeout: float = 0.0
    remote_timeout: float = 0.0
    trace: TraceMode = TraceMode.OFF

    def __post_init__(self) -> None:
        for name, value in (
            ("addp-timeout", self.timeout),
            ("addp-remote-timeout", self.remote_timeout),
        ):
            if not math.isfinite(value) or not 0 <= value <= MAX_TIMEOUT:
                raise OptionError(name, f"{value!r} is outside 0 to 3600 seconds")

    @classmethod
    def from_mapping(cls, options: Mapping[str, str]) -> AddpOptions:
        """Build from ``option -> text`` as found in a configuration section.

        Keys other than :data:`OPTION_NAMES` are ignored here: the caller
        owns the section and decides what an unknown key means.

        Raises:
            OptionError: naming the first option whose value is not accepted.
        """
        enabled = parse_protocol(options["protocol"]) if "protocol" in options else False
        timeout = parse_timeout("addp-timeout", options.get("addp-timeout", "0"))
        remote = parse_timeout("addp-remote-timeout", options.get("addp-remote-timeout", "0"))
        trace = parse_trace(options.get("addp-trace", "off"))
        return cls(enabled=enabled, timeout=timeout, remote_timeout=remote, trace=trace)

    @classmethod
    def addp(
        cls, timeout: float, remote_timeout: float = 0.0, trace: TraceMode = TraceMode.OFF
    ) -> AddpOptions:
        """Shorthand for ``protocol = addp`` with the given timeouts."""
        return cls(enabled=True, timeout=timeout, remote_timeout=remote_timeout, trace=trace)

    @property
    def local_timeout(self) -> float:
        """The timeout this side runs by its own configuration (0 when off)."""
        return self.timeout if self.enabled else 0.0

    @property
    def requested_remote_timeout(self) -> float:
        """The timeout this side asks the peer to run (0 when off)."""
        return self.remote_timeout if self.enabled else 0.0
