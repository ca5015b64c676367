"""The file format of Genesys configuration files: ``[section]`` and ``option = value``.

Shared by the Configuration Server's file and the supervisor's ``scs.conf``:
:func:`read_sections` checks the format only; :class:`Section` turns one
section's texts into checked values, and every problem into one
:class:`ConfigError` line naming the file, the section and the option.
"""

from __future__ import annotations

import codecs
import configparser
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from addp.optionspec import OptionSpec, size_text

_T = TypeVar("_T")


class _From(enum.Enum):
    """The default of a value: from the option's spec."""

    SPEC = "spec"


_SPEC = _From.SPEC

#: Name given to configparser's DEFAULT section: no file can write it, so a
#: ``[DEFAULT]`` section in a file is an ordinary section and nothing is inherited.
_NO_DEFAULT_SECTION = "\0default"


class ConfigError(Exception):
    """A configuration file cannot be read, or holds something the server refuses.

    ``str(err)`` is one line: the file, then ``[section] option:`` when the
    problem belongs to one option, then what is wrong, e.g.
    ``confserv.conf: [confserv] port: 'abc' is not a port number (1 to 65535)``
    or ``confserv.conf: no section [confserv]``.

    Attributes:
        file: The configuration file, as the caller named it.
        section: The section the problem is in or about, else None.
        option: The option the problem is in (lower case), else None.
        detail: What is wrong, without the location.
    """

    def __init__(
        self,
        file: Path | str,
        detail: str,
        section: str | None = None,
        option: str | None = None,
    ) -> None:
        self.file = Path(file)
        self.detail = detail
        self.section = section
        self.option = option
        where = f"[{section}] {option}: " if option is not None else ""
        super().__init__(f"{self.file}: {where}{detail}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[Path, str, str | None, str | None]]:
        return (type(self), (self.file, self.detail, self.section, self.option))


def read_sections(file: Path | str) -> dict[str, dict[str, str]]:
    """Read a configuration file into ``{section: {option: value}}``, unchecked.

    Sections keep the file's order and spelling; option names are in lower
    case; values are stripped. Only the format is checked: a line that is not
    a ``[section]``, an ``option = value`` or a comment, an option before the
    first section, a section or an option given twice, and a value continued
    on an indented line are errors.

    Raises:
        ConfigError: the file cannot be read or is not in the format.
    """
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            path, f"cannot read the file: not UTF-8 text (byte {err.start} is not valid)"
        ) from None
    except OSError as err:
        raise ConfigError(path, f"cannot read the file: {err.strerror or err}") from None

    parser = configparser.ConfigParser(
        delimiters=("=",),
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=None,
        strict=True,
        empty_lines_in_values=False,
        default_section=_NO_DEFAULT_SECTION,
        interpolation=None,
    )
    lines = text.split("\n")
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateOptionError as err:
        raise ConfigError(
            path, f"given twice (again on line {err.lineno})", err.section, err.option
        ) from None
    except configparser.DuplicateSectionError as err:
        raise ConfigError(
            path, f"section [{err.section}] given twice (again on line {err.lineno})", err.section
        ) from None
    except configparser.MissingSectionHeaderError as err:
        line = lines[err.lineno - 1].strip()
        raise ConfigError(
            path, f"line {err.lineno}: {line!r} comes before the first [section]"
        ) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0]
        line = lines[lineno - 1].strip()
        raise ConfigError(
            path, f"line {lineno}: {line!r} is not a [section], an option = value or a comment"
        ) from None
    except configparser.Error as err:  # pragma: no cover - no other error is raised by reading
        raise ConfigError(path, f"cannot parse the file: {err.message}") from None

    sections: dict[str, dict[str, str]] = {}
    for name in parser.sections():
        options = dict(parser.items(name, raw=True))
        for option, value in options.items():
            if "\n" in value:
                raise ConfigError(
                    path,
                    "the value goes on over an indented line (options start at the line's start)",
                    name,
                    option,
                )
        sections[name] = options
    return sections


@dataclass(frozen=True, slots=True)
class Section:
    """One section being checked: turns its texts into values or located errors.

    Public so that other readers of the same format (the supervisor's scs.conf)
    check values the same way and report errors the same way.
    """

    file: Path
    name: str
    options: Mapping[str, str]

    def error(self, option: str, detail: str) -> ConfigError:
        """An error about ``option`` of this section."""
        return ConfigError(self.file, detail, self.name, option)

    def check_known(self, known: frozenset[str]) -> None:
        """Refuse the first option (in file order) that is not in ``known``."""
        for option in self.options:
            if option not in known:
                raise self.error(option, "unknown option")

    def text(self, option: str) -> str | None:
        """The option's text; None when absent or empty."""
        return self.options.get(option) or None

    def _spec(self, option: str | OptionSpec) -> tuple[str, OptionSpec | None]:
        return (option, None) if isinstance(option, str) else (option.name, option)

    def _given_or_default(self, option: str | OptionSpec) -> tuple[str, str | None]:
        """The option's name and text, else the text of its spec's default (None: none)."""
        name, spec = self._spec(option)
        text = self.text(name)
        return name, text if text is not None or spec is None else spec.default

    def string(self, option: OptionSpec) -> str | None:
        """The option's text, else its spec's default; None when neither."""
        return self._given_or_default(option)[1]

    def choice(
        self, option: str | OptionSpec, words: Mapping[str, _T], default: _T | _From = _SPEC
    ) -> _T:
        """One of ``words`` (not case-sensitive). With a spec and no ``default``, the
        spec's default (written as in the file) when the option is not set."""
        name, spec = self._spec(option)
        text = self.text(name)
        if text is None:
            if not isinstance(default, _From):
                return default
            text = _default_of(name, spec)
        try:
            return words[text.lower()]
        except KeyError:
            raise self.error(name, f"{text!r} is not one of {', '.join(words)}") from None

    def integer(
        self,
        option: str | OptionSpec,
        default: int | _From = _SPEC,
        *,
        low: int | None = None,
        high: int | None = None,
        what: str | None = None,
    ) -> int:
        """A whole number from ``low`` to ``high``; ``what`` names it in the error. With a
        spec, what is not given comes from it (the default as written in the file)."""
        name, spec = self._spec(option)
        lowest, highest = int(_bound(spec, "low", low)), int(_bound(spec, "high", high))
        what = what if what is not None or spec is None else spec.what
        text = self.text(name)
        if text is None:
            if not isinstance(default, _From):
                return default
            text = _default_of(name, spec)
        value = self._checked_integer(name, text, lowest, highest, what or "a number")
        assert value is not None
        return value

    def port(self, option: str | OptionSpec) -> int | None:
        """A TCP port (1 to 65535); a spec's default, else None, when not set."""
        name, text = self._given_or_default(option)
        return self._checked_integer(name, text, 1, 65535, "a port number")

    def _checked_integer(
        self, option: str, text: str | None, low: int, high: int, what: str
    ) -> int | None:
        if text is None:
            return None
        # a length bound first: int() of a 5,000-digit string raises (and is no number here)
        if not (_digits(text) and low <= int(text) <= high):
            raise self.error(option, f"{_shown(text)} is not {what} ({low} to {high})")
        return int(text)

    def seconds(
        self,
        option: str | OptionSpec,
        default: float | _From = _SPEC,
        *,
        low: float | None = None,
        high: float | None = None,
        above_low: bool | None = None,
    ) -> float:
        """A number of seconds from ``low`` (excluded when ``above_low``) to ``high``. With
        a spec, what is not given comes from it (the default as written in the file)."""
        name, spec = self._spec(option)
        low, high = _bound(spec, "low", low), _bound(spec, "high", high)
        above = above_low if above_low is not None else bool(spec and spec.above_low)
        text = self.text(name)
        if text is None:
            if not isinstance(default, _From):
                return default
            text = _default_of(name, spec)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        in_range = value > low if above else value >= low
        if not (math.isfinite(value) and in_range and value <= high):
            bounds = f"more than {low:g}, at most {high:g}" if above else f"{low:g} to {high:g}"
            raise self.error(name, f"{text!r} is not a number of seconds ({bounds})")
        return value

    def size(
        self,
        option: str | OptionSpec,
        default: int | _From | None = _SPEC,
        *,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        """A size in bytes, written as Genesys' ``[log] segment`` is: ``N`` or ``N KB``
        (kilobytes), ``N MB``, ``N GB``; ``false`` for none (None). From ``low`` to ``high``
        bytes. With a spec, what is not given comes from it."""
        name, spec = self._spec(option)
        lowest, highest = int(_bound(spec, "low", low)), int(_bound(spec, "high", high))
        text = self.text(name)
        if text is None:
            if not isinstance(default, _From):
                return default
            text = spec.default if spec is not None else None
            if text is None:
                return None
        if text.lower() in ("false", "no", "off", "0"):
            return None
        number, unit = text, "kb"
        for suffix in ("kb", "mb", "gb"):
            if text.lower().endswith(suffix):
                number, unit = text[: -len(suffix)].strip(), suffix
                break
        scale = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}[unit]
        if not (_digits(number) and lowest <= int(number) * scale <= highest):
            raise self.error(
                name,
                f"{_shown(text)} is not a size (N KB, N MB or N GB, {size_text(lowest)} to "
                f"{size_text(highest)}; false for none)",
            )
        return int(number) * scale

    def encoding(self, option: str | OptionSpec, default: str | None = None) -> str:
        """A text encoding Python knows, by the name Python gives it (a spec's default
        when not set and no ``default`` is given)."""
        name, text = self._given_or_default(option)
        if self.text(name) is None and default is not None:
            return default
        if text is None:
            raise TypeError(f"{name}: no default given, none in its spec")
        try:
            codec = codecs.lookup(text).name
            "".encode(codec)  # refuses codecs that are not text encodings (base64, rot13)
        except LookupError:
            raise self.error(name, f"{text!r} is not a text encoding Python knows") from None
        return codec

    def masters(self, option: str) -> tuple[tuple[str, int], ...]:
        """A comma-separated list of ``host:port`` (``[::1]:port`` for IPv6); required."""
        text = self.text(option)
        if text is None:
            raise self.error(option, "missing (a proxy needs its master as host:port)")
        masters: list[tuple[str, int]] = []
        for item in (part.strip() for part in text.split(",")):
            host, _, port_text = item.rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            elif ":" in host:
                host = ""  # an IPv6 address must be written in brackets
            port_ok = _digits(port_text) and 1 <= int(port_text) <= 65535
            if not host or not port_ok:
                raise self.error(option, f"{_shown(item)} is not host:port (port 1 to 65535)")
            if (host, int(port_text)) in masters:
                raise self.error(option, f"{item!r} is listed twice")
            masters.append((host, int(port_text)))
        return tuple(masters)


def _default_of(option: str, spec: OptionSpec | None) -> str:
    """The text of the spec's default (a programming error when there is none)."""
    if spec is None or spec.default is None:
        raise TypeError(f"{option}: no default given, none in its spec")
    return spec.default


def _bound(spec: OptionSpec | None, which: str, given: float | None) -> float:
    """``given``, else the spec's ``low`` or ``high``."""
    value = given if given is not None or spec is None else getattr(spec, which)
    if value is None:
        raise TypeError(f"no {which} bound given, none in the spec")
    return value


def _digits(text: str) -> bool:
    """ASCII digits only, and few enough for a number an option may hold."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def _shown(text: str, limit: int = 40) -> str:
    """``repr`` of an option's value for an error line, cut when long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
