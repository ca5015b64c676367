"""docs/configuration.md, the option tables, the parsers and examples/ agree.

- The reference is the generator's text (``python -m scs.reference``).
- Every option of every table, written with its documented default, parses to
  the same settings as leaving it out (where the default is one fixed value).
- A value just outside each documented range is refused, naming the option;
  the bounds themselves are accepted (but where a bound is another option).
- Every word a ``choice`` option documents is accepted.
- Every option appears in examples/ (in the sections the tables describe), at
  least once under a comment line of its own; no example key is unknown; the
  examples load, and the backup's compared options are the primary's.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from addp.optionspec import OptionSpec
from confserv.config.format import ConfigError
from confserv.config.options import effective_options
from confserv.config.settings import load_server_settings
from lca.config import AgentConfigError, load_agent_settings
from scs.config import load_scs_settings
from scs.reference import DOCUMENT, SECTIONS, render
from tests.helpers.tls import TlsFiles, make_tls_files

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"

Sections = dict[str, dict[str, str]]
Key = tuple[str, str]

# -- the document ------------------------------------------------------------------------


def test_the_reference_is_the_generated_text() -> None:
    text = (ROOT / DOCUMENT).read_text(encoding="utf-8")
    assert text == render(), f"{DOCUMENT} is out of date: run 'python -m scs.reference'"


def test_the_generator_checks_and_writes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "scs.reference", "--check", str(tmp_path)]
    (tmp_path / "docs").mkdir()
    (tmp_path / DOCUMENT).write_text("old\n", encoding="utf-8")
    stale = subprocess.run(command, capture_output=True, text=True, check=False)
    assert (stale.returncode, stale.stdout) == (1, "")
    assert stale.stderr == (
        f"{tmp_path / DOCUMENT} is out of date: run 'python -m scs.reference'\n"
    )
    wrote = subprocess.run([*command[:3], str(tmp_path)], capture_output=True, text=True)
    assert (wrote.returncode, wrote.stdout) == (0, f"wrote {tmp_path / DOCUMENT}\n")
    assert (tmp_path / DOCUMENT).read_text(encoding="utf-8") == render()
    fresh = subprocess.run(command, capture_output=True, text=True, check=False)
    assert (fresh.returncode, fresh.stderr) == (0, "")


def test_every_table_is_in_the_reference() -> None:
    text = render()
    for table in SECTIONS.values():
        for spec in table:
            assert f"| `{spec.name}` | " in text


# -- each table against its parser ---------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


def _tls_lines(tls: TlsFiles) -> dict[str, str]:
    return {
        "encryption": "true",
        "tls-certificate": str(tls.certificate),
        "tls-private-key": str(tls.private_key),
        "tls-ca": str(tls.ca),
    }


@dataclasses.dataclass(frozen=True)
class Case:
    """How to load a file in which one section holds the option under test."""

    file: str
    target: str
    base: Callable[[OptionSpec, TlsFiles], Sections]
    load: Callable[[Path], object]


def _confserv(spec: OptionSpec, tls: TlsFiles) -> Sections:
    own = {"port": "2120", "management-port": "2121", "server": "db"}
    if spec.name == "master":
        own = {"port": "2120", "mode": "proxy", "master": "127.0.0.1:2121"}
    if spec.name.startswith("tls-"):
        own |= _tls_lines(tls)
    db = {"dbengine": "sqlite", "dbname": "x.sqlite", "username": "u"}
    return {"confserv": own, "db": db, "log": {}, "history-log": {}}


def _scs(spec: OptionSpec, tls: TlsFiles) -> Sections:
    own = {"control-port": "2190", "control-secret": "s", "database": "confdb"}
    if spec.name.startswith("tls-"):
        own |= _tls_lines(tls)
    server = {"port": "3000", "management-port": "3001", "management-secret": "x"}
    return {
        "scs": own,
        "confdb": {"dbengine": "sqlite", "dbname": "x.sqlite"},
        "a": server | {"server": "b", "command": "confserv -s a -c a.conf"},
        "b": {"port": "3010", "management-port": "3011", "management-secret": "x"}
        | {"server": "a", "command": "confserv -s b -c b.conf"},
        "hostA": {"type": "host", "agent-secret": "s"},
    }


def _lca(spec: OptionSpec, tls: TlsFiles) -> Sections:
    own = {"agent-secret": "s", "host-name": "hostA"}
    if spec.name.startswith("tls-"):
        own |= _tls_lines(tls)
    return {"lca": own}


CASES: dict[Key, Case] = {
    ("confserv.conf", "server"): Case(
        "confserv.conf", "confserv", _confserv, lambda p: load_server_settings(p, "confserv")
    ),
    ("confserv.conf", "database"): Case(
        "confserv.conf", "db", _confserv, lambda p: load_server_settings(p, "confserv")
    ),
    ("confserv.conf", "log"): Case(
        "confserv.conf", "log", _confserv, lambda p: load_server_settings(p, "confserv")
    ),
    ("confserv.conf", "history-log"): Case(
        "confserv.conf", "history-log", _confserv, lambda p: load_server_settings(p, "confserv")
    ),
    ("scs.conf", "scs"): Case("scs.conf", "scs", _scs, load_scs_settings),
    ("scs.conf", "server"): Case("scs.conf", "a", _scs, load_scs_settings),
    ("scs.conf", "host"): Case("scs.conf", "hostA", _scs, load_scs_settings),
    ("lca.conf", "lca"): Case("lca.conf", "lca", _lca, load_agent_settings),
}


def test_every_table_has_a_case() -> None:
    assert set(CASES) == set(SECTIONS)


def _specs(keep: Callable[[OptionSpec], bool]) -> list[Any]:
    return [
        pytest.param(key, spec, id=f"{key[0]}[{key[1]}]-{spec.name}")
        for key, table in SECTIONS.items()
        for spec in table
        if keep(spec)
    ]


def _load(tmp_path: Path, key: Key, spec: OptionSpec, tls: TlsFiles, value: str | None) -> Any:
    case = CASES[key]
    sections = case.base(spec, tls)
    sections[case.target].pop(spec.name, None)
    if value is not None:
        sections[case.target][spec.name] = value
    path = tmp_path / case.file
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
            for name, options in sections.items()
        ),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return _plain(case.load(path))


def _plain(value: Any) -> Any:
    """Settings as comparable data: a TLS context (compared by identity) as a mark."""
    if isinstance(value, ssl.SSLContext):
        return "an SSL context"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _refused(tmp_path: Path, key: Key, spec: OptionSpec, tls: TlsFiles, value: str) -> str:
    with pytest.raises((ConfigError, AgentConfigError)) as info:
        _load(tmp_path, key, spec, tls, value)
    err = info.value
    if isinstance(err, ConfigError):
        assert (err.section, err.option) == (CASES[key].target, spec.name), str(err)
    else:
        assert f"[{CASES[key].target}] {spec.name}: " in str(err)
    return str(err)


@pytest.mark.parametrize(("key", "spec"), _specs(lambda s: s.default is not None))
def test_the_documented_default_is_the_default(
    tmp_path: Path, tls: TlsFiles, key: Key, spec: OptionSpec
) -> None:
    assert spec.default is not None
    written = _load(tmp_path, key, spec, tls, spec.default)
    assert written == _load(tmp_path, key, spec, tls, None)


def _numeric(spec: OptionSpec) -> bool:
    return spec.kind == "port" or (spec.low is not None and spec.high is not None)


def _outside(spec: OptionSpec) -> tuple[str, str]:
    """A value just under the range and one just over it, as written in a file."""
    if spec.kind == "port":
        return "0", "65536"
    assert spec.low is not None
    assert spec.high is not None
    if spec.kind == "size":
        return f"{(int(spec.low) >> 10) - 1} KB", f"{(int(spec.high) >> 10) + 1} KB"
    if spec.kind == "integer":
        return str(int(spec.low) - 1), str(int(spec.high) + 1)
    under = spec.low if spec.above_low else round(spec.low - 0.001, 6)
    return repr(under), repr(round(spec.high + 0.001, 6))


def _bounds(spec: OptionSpec) -> tuple[str, str]:
    """The range's ends (or the nearest values inside), as written in a file."""
    if spec.kind == "port":
        return "1", "65535"
    assert spec.low is not None
    assert spec.high is not None
    if spec.kind == "size":
        return f"{int(spec.low) >> 10} KB", f"{int(spec.high) >> 10} KB"
    if spec.kind == "integer":
        return str(int(spec.low)), str(int(spec.high))
    low = round(spec.low + 0.001, 6) if spec.above_low else spec.low
    return repr(low), repr(spec.high)


@pytest.mark.parametrize(("key", "spec"), _specs(_numeric))
def test_a_value_just_outside_the_range_is_refused(
    tmp_path: Path, tls: TlsFiles, key: Key, spec: OptionSpec
) -> None:
    for value in _outside(spec):
        _refused(tmp_path, key, spec, tls, value)


#: Options whose bound is another option's value (their range says so in words): the ends of
#: the number range alone may be refused by that relation.
def _related(spec: OptionSpec) -> bool:
    return spec.range_shown is not None or spec.name.startswith("supervisor-lease-")


@pytest.mark.parametrize(("key", "spec"), _specs(lambda s: _numeric(s) and not _related(s)))
def test_the_ends_of_the_range_are_accepted(
    tmp_path: Path, tls: TlsFiles, key: Key, spec: OptionSpec
) -> None:
    for value in _bounds(spec):
        _load(tmp_path, key, spec, tls, value)


#: ``type`` (scs.conf) and ``mode`` (confserv.conf) decide what the section is and which other
#: options it needs; their words are tested by tests/scs/test_config.py and
#: tests/confserv/test_config.py.
_CHOICES_ELSEWHERE = {"type", "mode"}


@pytest.mark.parametrize(
    ("key", "spec"),
    _specs(lambda s: s.kind == "choice" and s.name not in _CHOICES_ELSEWHERE),
)
def test_every_documented_choice_is_accepted(
    tmp_path: Path, tls: TlsFiles, key: Key, spec: OptionSpec
) -> None:
    assert spec.choices
    for word in spec.choices:
        _load(tmp_path, key, spec, tls, word)
    _refused(tmp_path, key, spec, tls, "no-such-word")


# -- examples/ ---------------------------------------------------------------------------

#: Which table each section of each example follows; ``complete``: the file shows all of it.
EXAMPLE_SECTIONS: dict[str, dict[str, Key]] = {
    "confserv.conf": {
        "confserv": ("confserv.conf", "server"),
        "dbserver": ("confserv.conf", "database"),
        "log": ("confserv.conf", "log"),
        "history-log": ("confserv.conf", "history-log"),
    },
    "backup.conf": {
        "Backup CS": ("confserv.conf", "server"),
        "dbserver": ("confserv.conf", "database"),
        "log": ("confserv.conf", "log"),
        "history-log": ("confserv.conf", "history-log"),
    },
    "proxy.conf": {"proxy": ("confserv.conf", "server"), "log": ("confserv.conf", "log")},
    "scs.conf": {
        "scs": ("scs.conf", "scs"),
        "confdb": ("confserv.conf", "database"),
        "hostA": ("scs.conf", "host"),
        "confserv": ("scs.conf", "server"),
        "Backup CS": ("scs.conf", "server"),
        "proxy": ("scs.conf", "server"),
    },
    "lca.conf": {"lca": ("lca.conf", "lca")},
}
#: The example that shows every option of each table.
COMPLETE: dict[Key, str] = {
    ("confserv.conf", "server"): "confserv.conf",
    ("confserv.conf", "database"): "confserv.conf",
    ("confserv.conf", "log"): "confserv.conf",
    ("confserv.conf", "history-log"): "confserv.conf",
    ("scs.conf", "scs"): "scs.conf",
    ("scs.conf", "server"): "scs.conf",
    ("scs.conf", "host"): "scs.conf",
    ("lca.conf", "lca"): "lca.conf",
}

_HEADER = re.compile(r"^#?\s*\[(?P<name>[^\]]+)\]\s*$")
_KEY = re.compile(r"^#?\s*(?P<name>[a-z][a-z0-9-]*)\s*=")


@dataclasses.dataclass(frozen=True)
class ExampleKey:
    file: str
    line: int
    section: str
    name: str
    comment: bool  # the line above is a comment of its own (not a key, not a header)


def _example_keys(file: str) -> list[ExampleKey]:
    """Every key of the example, set or commented out, with the section it is under."""
    keys: list[ExampleKey] = []
    section, above = "", ""
    for number, line in enumerate((EXAMPLES / file).read_text().splitlines(), 1):
        if header := _HEADER.match(line):
            section = header["name"]
        elif key := _KEY.match(line):
            commented = above.startswith("#") and not _KEY.match(above) and not _HEADER.match(above)
            keys.append(ExampleKey(file, number, section, key["name"], commented))
        above = line
    return keys


def test_every_option_is_in_the_examples_with_its_comment() -> None:
    shown: dict[Key, set[str]] = {key: set() for key in SECTIONS}
    explained: dict[Key, set[str]] = {key: set() for key in SECTIONS}
    for file, sections in EXAMPLE_SECTIONS.items():
        for key in _example_keys(file):
            if key.section in sections and COMPLETE[sections[key.section]] == file:
                shown[sections[key.section]].add(key.name)
                if key.comment:
                    explained[sections[key.section]].add(key.name)
    missing = {
        f"{COMPLETE[key]} [{key[1]}]": sorted(table.names - shown[key])
        for key, table in SECTIONS.items()
        if table.names - shown[key]
    }
    bare = {
        f"{COMPLETE[key]} [{key[1]}]": sorted(shown[key] - explained[key])
        for key in SECTIONS
        if shown[key] - explained[key]
    }
    assert (missing, bare) == ({}, {})


def test_every_example_key_is_known() -> None:
    unknown = [
        f"{file}:{key.line} [{key.section}] {key.name}"
        for file, sections in EXAMPLE_SECTIONS.items()
        for key in _example_keys(file)
        # [hca], [soap]: sections no reader here reads
        if key.section in sections and key.name not in SECTIONS[sections[key.section]].names
    ]
    assert unknown == []


def test_the_examples_load_and_the_backup_shares_the_primary_s_options() -> None:
    primary = load_server_settings(EXAMPLES / "confserv.conf", "confserv")
    backup = load_server_settings(EXAMPLES / "backup.conf", "Backup CS")
    assert effective_options(primary) == effective_options(backup)
    assert load_server_settings(EXAMPLES / "proxy.conf", "proxy").mode == "proxy"
    assert load_scs_settings(EXAMPLES / "scs.conf").http_port is None
    assert load_agent_settings(EXAMPLES / "lca.conf").port == 4999
