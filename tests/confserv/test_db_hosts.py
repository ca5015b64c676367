"""The database section lists several PostgreSQL servers (issue 13, the replicated database).

``host = a:5432, b:5432``: every server of a replicated Configuration
Database; the store connects to whichever accepts writes. One host reads as
before; a bad list is one line naming the option; SQLite refuses a list; the
pair's option comparison leaves the host list out (each server may reach the
database by its own route).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserv.config.dbhosts import MAX_DB_HOSTS, HostListError, parse_db_hosts
from confserv.config.options import effective_options, options_diff
from confserv.config.settings import ConfigError, load_server_settings

BASE = """\
[confserv]
port = 2120
server = dbserver
[dbserver]
dbengine = postgre
dbname = cfg
username = cfg
"""


def load(tmp_path: Path, db_lines: str, base: str = BASE) -> tuple[Path, object]:
    path = tmp_path / "confserv.conf"
    path.write_text(base + db_lines)
    path.chmod(0o600)
    return path, load_server_settings(path, "confserv").db


def error_line(tmp_path: Path, db_lines: str, base: str = BASE) -> str:
    path = tmp_path / "confserv.conf"
    path.write_text(base + db_lines)
    with pytest.raises(ConfigError) as info:
        load_server_settings(path, "confserv")
    text = str(info.value)
    assert "\n" not in text
    return text


def test_one_host_reads_as_before(tmp_path: Path) -> None:
    _, db = load(tmp_path, "host = db1\nport = 4140\n")
    assert (db.host, db.port, db.addresses) == ("db1", 4140, (("db1", 4140),))  # type: ignore[attr-defined]
    _, db = load(tmp_path, "dbserver = db2\n")
    assert db.addresses == (("db2", 5432),)  # type: ignore[attr-defined]
    _, db = load(tmp_path, "")
    assert db.addresses == (("127.0.0.1", 5432),)  # type: ignore[attr-defined]
    assert db.connect_timeout == 5.0  # type: ignore[attr-defined]


def test_a_list_of_servers(tmp_path: Path) -> None:
    _, db = load(tmp_path, "host = 10.0.0.4:5432, 10.0.0.5, [fd00::6]:6543, fd00::7\nport = 5433\n")
    assert db.addresses == (  # type: ignore[attr-defined]
        ("10.0.0.4", 5432),
        ("10.0.0.5", 5433),  # no port of its own: the section's
        ("fd00::6", 6543),
        ("fd00::7", 5433),
    )
    _, db = load(tmp_path, "dbserver = a:1,b:2\nconnect-timeout = 0.5\n")
    assert db.addresses == (("a", 1), ("b", 2))  # type: ignore[attr-defined]
    assert db.connect_timeout == 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("host = a:5432,,b:5432\n", "[dbserver] host: an empty entry; list the PostgreSQL"),
        ("host = a:5432, a:5432\n", "[dbserver] host: 'a:5432' is listed twice"),
        ("host = a:99999, b\n", "[dbserver] host: 'a:99999': '99999' is not a port (1 to 65535)"),
        ("host = a:0\n", "[dbserver] host: 'a:0': '0' is not a port (1 to 65535)"),
        ("host = a:x\n", "[dbserver] host: 'a:x': 'x' is not a port (1 to 65535)"),
        ("host = a b:1\n", "[dbserver] host: 'a b:1' is not a host or host:port"),
        ("host = :5432\n", "[dbserver] host: ':5432' has no host"),
        ("host = [::1\n", "[dbserver] host: '[::1' is not [IPv6 address]:port"),
        ("host = [db]:1\n", "[dbserver] host: '[db]:1': 'db' is not an IPv6 address"),
        ("host = a:b:c\n", "[dbserver] host: 'a:b:c' is not a host or host:port (write IPv6"),
        ("dbserver = x:1,\n", "[dbserver] dbserver: an empty entry"),
        ("connect-timeout = 0\n", "[dbserver] connect-timeout: '0' is not a number of seconds"),
        ("host = " + ",".join(f"h{i}" for i in range(17)) + "\n", "lists 17 servers; at most 16"),
    ],
)
def test_a_bad_list_is_one_line_naming_the_option(
    tmp_path: Path, lines: str, expected: str
) -> None:
    assert expected in error_line(tmp_path, lines)


def test_sqlite_refuses_a_list_and_keeps_ignoring_one_host(tmp_path: Path) -> None:
    base = BASE.replace("dbengine = postgre", "dbengine = sqlite")
    line = error_line(tmp_path, "host = a:1, b:2\n", base)
    assert line.endswith(
        "[dbserver] host: lists several servers, but sqlite is one file (postgre?)"
    )
    _, db = load(tmp_path, "host = whatever it was\n", base)  # as before: not read for sqlite
    assert db.engine == "sqlite"  # type: ignore[attr-defined]


def test_the_pair_does_not_compare_the_host_list(tmp_path: Path) -> None:
    # Each server may reach the database by its own route: the list is not compared.
    one = tmp_path / "one.conf"
    two = tmp_path / "two.conf"
    one.write_text(BASE + "host = 10.0.0.4:5432, 10.0.0.5:5432\nconnect-timeout = 1\n")
    two.write_text(BASE + "host = pooler.local:6432\nconnect-timeout = 3\n")
    mine = effective_options(load_server_settings(one, "confserv"))
    theirs = effective_options(load_server_settings(two, "confserv"))
    assert options_diff(mine, theirs) is None
    assert {"database host", "database port", "database connect-timeout"}.isdisjoint(mine)


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
entries = st.tuples(hosts, st.one_of(st.none(), st.integers(1, 65535)))


@given(st.lists(entries, min_size=1, max_size=MAX_DB_HOSTS), st.sampled_from([", ", ",", " , "]))
def test_any_list_written_reads_back(items: list[tuple[str, int | None]], sep: str) -> None:
    text = sep.join(h if p is None else f"{h}:{p}" for h, p in items)
    expected = tuple((h.strip("[]"), 5432 if p is None else p) for h, p in items)
    if len(set(expected)) < len(expected):
        with pytest.raises(HostListError, match="listed twice"):
            parse_db_hosts(text)
    else:
        assert parse_db_hosts(text) == expected


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    try:
        addresses = parse_db_hosts(text, 6000)
    except HostListError as exc:
        assert str(exc)
    else:
        assert 1 <= len(addresses) <= MAX_DB_HOSTS
        assert all(host and 1 <= port <= 65535 for host, port in addresses)
