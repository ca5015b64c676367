"""The options of a configuration section as tables: name, kind, default, range, meaning.

Every reader of the seed's ``[section]`` / ``option = value`` files (the
Configuration Server's, the supervisor's, the host agent's) declares each of
its sections as an :class:`OptionTable` of :class:`OptionSpec` entries. The
set of names a section accepts is the table's (:attr:`OptionTable.names`), so
no option can be read and left out of the reference; the parsers take the
defaults and bounds from the entries; ``python -m scs.reference`` writes
``docs/configuration.md`` from the tables. This module sits in :mod:`addp`,
the package every other one builds on, so that the agent (which reads its file
without the Configuration Server's code) shares it, and it declares the four
ADDP options of a connection (:data:`ADDP_TABLE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from ._options import MAX_TIMEOUT

__all__ = ["ADDP_TABLE", "BOOLEAN_WORDS", "Kind", "OptionSpec", "OptionTable", "size_text"]

#: What an option's value is, as the reference names it.
Kind = Literal[
    "text",
    "secret",
    "path",
    "port",
    "seconds",
    "integer",
    "size",
    "choice",
    "boolean",
    "encoding",
    "list",
    "command",
    "section",
]

#: The words a boolean option accepts (not case-sensitive).
BOOLEAN_WORDS: dict[str, bool] = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionSpec:
    """One option of a section.

    Attributes:
        name: The option's name (lower case).
        kind: What its value is (:data:`Kind`).
        meaning: What it does, one paragraph of Markdown for the reference.
        default: The default as it would be written in the file, when it is one
            fixed value (leaving the option out is the same as writing this);
            None when there is none or it depends on other options.
        shown: The default in words, when ``default`` does not say it (it is
            computed, or the option is required); shown instead of ``default``.
        low: The smallest value (a number of seconds, a count, a size in bytes).
        high: The largest value.
        above_low: ``low`` itself is refused (more than ``low``).
        choices: The words a ``choice`` option accepts, in the reference's order.
        unit: What an ``integer`` counts (``days``, ``bytes``; empty: things).
        range_shown: The range in words, when ``low`` and ``high`` do not say it
            all (a bound that is another option).
    """

    name: str
    kind: Kind
    meaning: str
    default: str | None = None
    shown: str | None = None
    low: float | None = None
    high: float | None = None
    above_low: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    range_shown: str | None = None

    @property
    def what(self) -> str:
        """The value's description in an error line (``a number of days``)."""
        if self.unit == "bytes":
            return "a size in bytes"
        return f"a number of {self.unit}" if self.unit else "a count"

    @property
    def default_text(self) -> str:
        """The default for the reference's table: Markdown, never empty."""
        if self.shown is not None:
            return self.shown
        return "none" if self.default is None else f"`{self.default}`"

    @property
    def range_text(self) -> str:
        """The accepted values for the reference's table ("" when anything goes)."""
        if self.range_shown is not None:
            return self.range_shown
        if self.kind == "boolean":
            return "`true`, `false`"
        if self.kind == "choice":
            return ", ".join(f"`{word}`" for word in self.choices)
        if self.kind == "port":
            return "1 to 65535"
        if self.low is None or self.high is None:
            return ""
        if self.kind == "size":
            return f"{size_text(int(self.low))} to {size_text(int(self.high))}, or `false`"
        unit = " s" if self.kind == "seconds" else ""
        low, high = _number(self.low), _number(self.high)
        if self.above_low:
            return f"more than {low}, at most {high}{unit}"
        return f"{low} to {high}{unit}"


def _number(value: float) -> str:
    """``3600``, ``0.05``, ``4294967295``: whole numbers in full, never ``4.29e+09``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def size_text(size: int) -> str:
    """``64 KB``, ``10 MB``, ``10 GB``: a size in bytes in the largest whole unit."""
    for unit, shift in (("GB", 30), ("MB", 20)):
        if size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size >> 10} KB"


@dataclass(frozen=True, slots=True)
class OptionTable:
    """The options of one section, in the order the reference lists them.

    Built from specs and from other tables (:meth:`of`); a name given twice is
    refused. ``table["port"]`` is the entry of ``port`` (KeyError if none).
    """

    specs: tuple[OptionSpec, ...]
    _by_name: dict[str, OptionSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, OptionSpec] = {}
        for spec in self.specs:
            if spec.name in by_name:
                raise ValueError(f"option {spec.name!r} is in the table twice")
            by_name[spec.name] = spec
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def of(cls, *parts: OptionSpec | Iterable[OptionSpec]) -> OptionTable:
        """A table of these specs and the entries of these tables, in order."""
        specs: list[OptionSpec] = []
        for part in parts:
            specs.extend([part] if isinstance(part, OptionSpec) else part)
        return cls(tuple(specs))

    @property
    def names(self) -> frozenset[str]:
        """The names the section accepts."""
        return frozenset(self._by_name)

    def __getitem__(self, name: str) -> OptionSpec:
        return self._by_name[name]

    def __iter__(self) -> Iterator[OptionSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


#: The ADDP options of a connection (:class:`~addp.AddpOptions`), as a server's
#: section (and a supervised server's section of ``scs.conf``) has them.
ADDP_TABLE = OptionTable.of(
    OptionSpec(
        name="protocol",
        kind="choice",
        default="default",
        choices=("default", "addp"),
        meaning="`addp` turns the ADDP keep-alive on for this side's links.",
    ),
    OptionSpec(
        name="addp-timeout",
        kind="seconds",
        default="0",
        low=0.0,
        high=MAX_TIMEOUT,
        meaning="Seconds of silence before this side polls, and the wait for the answer "
        "(0: this side does not poll).",
    ),
    OptionSpec(
        name="addp-remote-timeout",
        kind="seconds",
        default="0",
        low=0.0,
        high=MAX_TIMEOUT,
        meaning="The timeout asked of the peer (sent in the handshake).",
    ),
    OptionSpec(
        name="addp-trace",
        kind="choice",
        default="off",
        choices=("off", "local", "remote", "both"),
        meaning="Where ADDP trace lines are written: this side's log (`local`), the "
        "peer's (`remote`) or both (also `true`/`on`/`yes` for local, `full` for both).",
    ),
)
