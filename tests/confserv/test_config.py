"""The configuration file: the seed's samples, the examples, and one exact line per error."""

from __future__ import annotations

import dataclasses
import pickle
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from addp import AddpOptions, TraceMode
from confserv.config.settings import (
    DATABASE_OPTIONS,
    HISTORY_OPTIONS,
    LOG_OPTIONS,
    SERVER_OPTIONS,
    ConfigError,
    DatabaseSettings,
    HistorySettings,
    LogSettings,
    load_server_settings,
    read_sections,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The seed's side-by-side sample, each column as its own file, verbatim.
SEED_PRIMARY = """\
[confserv]
port =2120
management-port =2121
server = dbserver
encryption = false
encoding = utf-8
[log]
verbose = standard
all = stderr
[hca]
schema = none
[soap]
port = 5001
[dbserver]
host =hostA
port =4140
dbengine =mssql
dbserver =HostB
dbname =gcti75
username =sa
password =sa
server =
reconnect-timeout = 10
response-timeout = 600
"""

SEED_BACKUP = """\
[log]
verbose = standard
all = stderr
[hca]
schema = none
[soap]
port = 5001
[dbserver]
host =hostA
port =4140
dbengine =mssql
dbserver =hostB
dbname =gcti75
username =sa
password =sa
server =
reconnect-timeout = 10
response-timeout = 600
[Backup CS]
port=2130
management-port=2131
server=dbserver
encryption=false
encoding=utf-8
"""

# A small valid file that the error tests change one line of.
MINIMAL = """\
[confserv]
port = 2120
management-port = 2121
server = dbserver
[dbserver]
dbengine = sqlite
dbname = confdb.sqlite
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so that files are named as an operator names them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str, name: str = "confserv.conf") -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(text: str, section: str = "confserv") -> None:
    load_server_settings(write(text), section)


def error_of(text: str, section: str = "confserv") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(text, section)
    return info.value


# -- the seed's sample -------------------------------------------------------------


def test_seed_primary_verbatim_is_refused_for_mssql(here: Path) -> None:
    err = error_of(SEED_PRIMARY)
    assert str(err) == (
        "confserv.conf: [dbserver] dbengine: 'mssql' is not supported (use sqlite or postgre)"
    )
    assert (err.file, err.section, err.option) == (Path("confserv.conf"), "dbserver", "dbengine")


def test_seed_backup_verbatim_is_refused_for_mssql(here: Path) -> None:
    err = error_of(SEED_BACKUP, "Backup CS")
    assert str(err) == (
        "confserv.conf: [dbserver] dbengine: 'mssql' is not supported (use sqlite or postgre)"
    )


def test_seed_primary_with_postgre(here: Path) -> None:
    path = write(SEED_PRIMARY.replace("dbengine =mssql", "dbengine =postgre"))
    got = load_server_settings(path, "confserv")
    assert got.file == path
    assert got.section == "confserv"
    assert (got.port, got.management_port) == (2120, 2121)
    assert got.management_secret is None
    assert got.encryption is False
    assert got.encoding == "utf-8"
    assert got.db == DatabaseSettings(
        section="dbserver",
        engine="postgre",
        host="HostB",  # dbserver is the DBMS host; host is only a fallback
        port=4140,
        dbname="gcti75",
        username="sa",
        password="sa",
        reconnect_timeout=10.0,
        response_timeout=600.0,
    )
    assert got.log == LogSettings(verbose="standard", all="stderr")
    assert got.history == HistorySettings()
    assert got.addp == AddpOptions()
    assert (got.mode, got.masters, got.pair) == ("master", (), None)
    assert (got.lease_ttl, got.lease_renew) == (10.0, 10.0 / 3)
    assert got.max_frame_size == 4194304


def test_seed_backup_with_postgre(here: Path) -> None:
    path = write(SEED_BACKUP.replace("dbengine =mssql", "dbengine =postgre"))
    got = load_server_settings(path, "Backup CS")
    assert (got.section, got.port, got.management_port) == ("Backup CS", 2130, 2131)
    assert got.db is not None
    assert (got.db.host, got.db.port, got.db.dbname) == ("hostB", 4140, "gcti75")
    assert got.pair is None  # membership comes from the database


def test_seed_with_sqlite_takes_dbname_against_the_files_directory(here: Path) -> None:
    Path("etc").mkdir()
    text = SEED_PRIMARY.replace("dbengine =mssql", "dbengine =sqlite")
    got = load_server_settings(write(text, "etc/confserv.conf"), "confserv")
    assert got.db is not None
    assert got.db.engine == "sqlite"
    assert got.db.dbname == str(here.resolve() / "etc" / "gcti75")


def test_two_servers_share_one_file(here: Path) -> None:
    # The backup's section added to the primary's file: each reads only its own.
    both = write(
        SEED_PRIMARY.replace("=mssql", "=postgre") + "[Backup CS]\nport=2130\nserver=dbserver\n"
    )
    assert load_server_settings(both, "confserv").port == 2120
    backup = load_server_settings(both, "Backup CS")
    assert (backup.port, backup.management_port) == (2130, None)


# -- the examples ------------------------------------------------------------------


def test_example_primary_loads() -> None:
    got = load_server_settings(EXAMPLES / "confserv.conf", "confserv")
    assert (got.port, got.management_port) == (2120, 2121)
    assert got.management_secret == "change-me"
    assert got.pair is None  # as in the seed: the database defines the pair
    assert got.addp == AddpOptions.addp(3.0, 3.0, TraceMode.OFF)
    assert got.db is not None
    assert got.db.engine == "sqlite"
    assert got.db.dbname == str((EXAMPLES.parent / "run" / "confdb.sqlite").resolve())
    assert (got.db.username, got.db.password) == ("confserv", "change-me")


def test_example_backup_loads() -> None:
    got = load_server_settings(EXAMPLES / "backup.conf", "Backup CS")
    assert (got.port, got.management_port) == (2130, 2131)
    assert got.pair is None


def test_examples_differ_only_in_section_and_ports() -> None:
    primary = load_server_settings(EXAMPLES / "confserv.conf", "confserv")
    backup = load_server_settings(EXAMPLES / "backup.conf", "Backup CS")
    assert (
        dataclasses.replace(
            backup, file=primary.file, section="confserv", port=2120, management_port=2121
        )
        == primary
    )


# -- reading the format ------------------------------------------------------------


def test_read_sections_is_the_raw_parse(here: Path) -> None:
    path = write("# comment\n; comment\n[Backup CS]\nPort=2130\nserver =\n[DEFAULT]\nx = a = b\n")
    assert read_sections(path) == {
        "Backup CS": {"port": "2130", "server": ""},
        "DEFAULT": {"x": "a = b"},
    }


def test_option_names_are_not_case_sensitive(here: Path) -> None:
    got = load_server_settings(write(MINIMAL.replace("port = 2120", "PORT = 2120")), "confserv")
    assert got.port == 2120


def test_section_names_are_case_sensitive(here: Path) -> None:
    assert str(error_of(MINIMAL, "Confserv")) == "confserv.conf: no section [Confserv]"


def test_sections_not_read_may_hold_anything(here: Path) -> None:
    got = load_server_settings(
        write(MINIMAL + "[hca]\nschema = none\nwhatever = 1\n[soap]\nport = soap\n"), "confserv"
    )
    assert got.port == 2120


def test_proxy_mode(here: Path) -> None:
    text = "[proxy]\nport = 2140\nmode = proxy\nmaster = cs1:2120, [::1]:2130\n"
    got = load_server_settings(write(text), "proxy")
    assert got.mode == "proxy"
    assert got.db is None
    assert got.masters == (("cs1", 2120), ("::1", 2130))


def test_every_option_set(here: Path) -> None:
    from tests.helpers.tls import make_tls_files

    tls = make_tls_files(here / "certs")
    text = """\
[confserv]
port = 2120
management-port = 2121
management-secret = s3
server = dbserver
encryption = yes
tls-certificate = certs/cert.pem
tls-private-key = certs/key.pem
tls-ca = certs/ca.pem
encoding = UTF8
mode = Master
pair = p
lease-ttl = 4
lease-renew = 1.5
max-frame-size = 1024
protocol = addp
addp-timeout = 2.5
addp-remote-timeout = 5
addp-trace = both
[dbserver]
dbengine = sqlite
dbname = :memory:
[log]
verbose = DEBUG
all = logs/cs.log
[history-log]
expiration = 7
max-records = 10
audit-expiration = 1
audit-max-records = 5
"""
    got = load_server_settings(write(text), "confserv")
    assert got.management_secret == "s3"
    assert (got.encryption, got.encoding, got.pair) == (True, "utf-8", "p")
    assert got.tls.certificate == tls.certificate.resolve()
    assert (got.lease_ttl, got.lease_renew, got.max_frame_size) == (4.0, 1.5, 1024)
    assert got.addp == AddpOptions.addp(2.5, 5.0, TraceMode.BOTH)
    assert got.db is not None
    assert got.db.dbname == ":memory:"
    assert got.log == LogSettings(verbose="debug", all=str(here.resolve() / "logs" / "cs.log"))
    assert got.history == HistorySettings(
        expiration_days=7, max_records=10, audit_expiration_days=1, audit_max_records=5
    )


def test_advertised_address_defaults_to_what_the_server_listens_on(here: Path) -> None:
    from confserv.server.app import advertised_address

    text = (
        "[cs]\nport = 2120\nmanagement-port = 2121\nserver = db\n"
        "[db]\ndbengine = sqlite\ndbname = x\n"
    )
    plain = load_server_settings(write(text), "cs")
    assert advertised_address(plain, {"port": 2120, "management_port": 2121}) == (
        "127.0.0.1:2120:2121"
    )
    told = load_server_settings(
        write(
            text.replace(
                "server = db",
                "server = db\nadvertise-host = cs.example\nadvertise-port = 9120\n"
                "advertise-management-port = 9121",
            )
        ),
        "cs",
    )
    assert (told.advertise_host, told.advertise_port, told.advertise_management_port) == (
        "cs.example",
        9120,
        9121,
    )
    assert advertised_address(told, {"port": 2120, "management_port": 2121}) == (
        "cs.example:9120:9121"
    )


# -- errors: one exact line each ---------------------------------------------------


def test_missing_file(here: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_server_settings("missing.conf", "confserv")
    assert str(info.value) == "missing.conf: cannot read the file: No such file or directory"
    assert (info.value.section, info.value.option) == (None, None)


def test_missing_section(here: Path) -> None:
    err = error_of(MINIMAL, "Backup CS")
    assert str(err) == "confserv.conf: no section [Backup CS]"
    assert (err.section, err.option) == ("Backup CS", None)


ERRORS = [
    # unknown options, in each section the server reads
    (
        ("management-port = 2121", "managment-port = 2121"),
        "confserv.conf: [confserv] managment-port: unknown option",
    ),
    (("dbengine = sqlite", "dbengine = sqlite\nuser = x"), "[dbserver] user: unknown option"),
    # ports
    (("port = 2120", "port = abc"), "[confserv] port: 'abc' is not a port number (1 to 65535)"),
    (("port = 2120", "port = 0"), "[confserv] port: '0' is not a port number (1 to 65535)"),
    (("port = 2120", "port = 65536"), "[confserv] port: '65536' is not a port number (1 to 65535)"),
    (("port = 2120", "port = -1"), "[confserv] port: '-1' is not a port number (1 to 65535)"),
    (
        ("port = 2120", "port = 2120.0"),
        "[confserv] port: '2120.0' is not a port number (1 to 65535)",
    ),
    (
        ("port = 2120", "port = 2120 # x"),
        "[confserv] port: '2120 # x' is not a port number (1 to 65535)",
    ),
    (("port = 2120", "port ="), "[confserv] port: missing (the port clients connect to)"),
    (
        ("management-port = 2121", "management-port = 2120"),
        "[confserv] management-port: '2120' is the same as port",
    ),
    (
        ("dbname = confdb.sqlite", "dbname = confdb.sqlite\nport = 99999"),
        "[dbserver] port: '99999' is not a port number (1 to 65535)",
    ),
    # the database section
    (
        ("dbengine = sqlite", "dbengine = oracle"),
        "[dbserver] dbengine: 'oracle' is not supported (use sqlite or postgre)",
    ),
    (
        ("dbengine = sqlite", "dbengine = DB2"),
        "[dbserver] dbengine: 'DB2' is not supported (use sqlite or postgre)",
    ),
    (
        ("dbengine = sqlite", "dbengine = postgres"),
        "[dbserver] dbengine: 'postgres' is not a database engine (use sqlite or postgre)",
    ),
    (("dbengine = sqlite", ""), "[dbserver] dbengine: missing (use sqlite or postgre)"),
    (("dbname = confdb.sqlite", ""), "[dbserver] dbname: missing (the database file)"),
    (
        ("dbengine = sqlite", "dbengine = postgre"),
        "[dbserver] username: missing (postgre needs a user name)",
    ),
    (
        ("server = dbserver", "server = nowhere"),
        "confserv.conf: [confserv] server: no section [nowhere]",
    ),
    (
        ("server = dbserver", "server ="),
        "[confserv] server: missing (names the Configuration Database section)",
    ),
    (
        ("server = dbserver", "server = confserv"),
        "[confserv] server: 'confserv' is this server's own section",
    ),
    # timeouts
    (
        ("dbname = confdb.sqlite", "dbname = x\nreconnect-timeout = soon"),
        "[dbserver] reconnect-timeout: 'soon' is not a number of seconds (0.1 to 3600)",
    ),
    (
        ("dbname = confdb.sqlite", "dbname = x\nresponse-timeout = 0"),
        "[dbserver] response-timeout: '0' is not a number of seconds (1 to 86400)",
    ),
    (
        ("port = 2120", "port = 2120\nlease-ttl = 0.1"),
        "[confserv] lease-ttl: '0.1' is not a number of seconds (0.2 to 3600)",
    ),
    (
        ("port = 2120", "port = 2120\nlease-ttl = inf"),
        "[confserv] lease-ttl: 'inf' is not a number of seconds (0.2 to 3600)",
    ),
    (
        ("port = 2120", "port = 2120\nlease-renew = 0"),
        "[confserv] lease-renew: '0' is not a number of seconds (more than 0, at most 3600)",
    ),
    (
        ("port = 2120", "port = 2120\nlease-renew = 10"),
        "[confserv] lease-renew: '10' is not less than lease-ttl (10 seconds)",
    ),
    # ADDP
    (
        ("port = 2120", "port = 2120\naddp-trace = loud"),
        "[confserv] addp-trace: 'loud' is not one of "
        "both, false, full, local, no, off, on, remote, true, yes",
    ),
    (
        ("port = 2120", "port = 2120\naddp-timeout = ten"),
        "[confserv] addp-timeout: 'ten' is not a number of seconds (0 to 3600)",
    ),
    (
        ("port = 2120", "port = 2120\nprotocol = tcp"),
        "[confserv] protocol: 'tcp' is not 'addp' or 'default'",
    ),
    # modes
    (
        ("server = dbserver", "mode = proxy"),
        "[confserv] master: missing (a proxy needs its master as host:port)",
    ),
    (
        ("port = 2120", "port = 2120\nmode = proxy"),
        "[confserv] server: not used when mode is proxy (a proxy reads its master)",
    ),
    (
        ("port = 2120", "port = 2120\nmaster = cs1:2120"),
        "[confserv] master: not used when mode is master (only a proxy has a master)",
    ),
    (
        ("server = dbserver", "mode = proxy\nmaster = cs1:2120,cs2"),
        "[confserv] master: 'cs2' is not host:port (port 1 to 65535)",
    ),
    (
        ("server = dbserver", "mode = proxy\nmaster = ::1:2120"),
        "[confserv] master: '::1:2120' is not host:port (port 1 to 65535)",
    ),
    (
        ("server = dbserver", "mode = proxy\nmaster = a:1, a:1"),
        "[confserv] master: 'a:1' is listed twice",
    ),
    (
        ("server = dbserver", "mode = proxy\nmaster = cs1:2120\nadvertise-port = 9"),
        "[confserv] advertise-port: not used when mode is proxy (only a master is advertised)",
    ),
    (
        ("port = 2120", "port = 2120\nadvertise-management-port = 70000"),
        "[confserv] advertise-management-port: '70000' is not a port number (1 to 65535)",
    ),
    (
        ("port = 2120", "port = 2120\nmode = backup"),
        "[confserv] mode: 'backup' is not one of master, proxy",
    ),
    # other values
    (
        ("port = 2120", "port = 2120\nencryption = maybe"),
        "[confserv] encryption: 'maybe' is not one of true, false, yes, no, on, off, 1, 0",
    ),
    (
        ("port = 2120", "port = 2120\nencoding = utf-9"),
        "[confserv] encoding: 'utf-9' is not a text encoding Python knows",
    ),
    (
        ("port = 2120", "port = 2120\nencoding = base64"),
        "[confserv] encoding: 'base64' is not a text encoding Python knows",
    ),
    (
        ("port = 2120", "port = 2120\nmax-frame-size = 1023"),
        "[confserv] max-frame-size: '1023' is not a size in bytes (1024 to 4294967295)",
    ),
    # the format itself
    (
        ("port = 2120", "port = 2120\nPort = 2121"),
        "confserv.conf: [confserv] port: given twice (again on line 3)",
    ),
    (
        ("[dbserver]", "[confserv]\n[dbserver]"),
        "confserv.conf: section [confserv] given twice (again on line 5)",
    ),
    (
        ("[confserv]\n", "port: 2120\n[confserv]\n"),
        "confserv.conf: line 1: 'port: 2120' comes before the first [section]",
    ),
    (
        ("server = dbserver", "server dbserver"),
        "confserv.conf: line 4: 'server dbserver' "
        "is not a [section], an option = value or a comment",
    ),
    (
        ("management-port = 2121", "  management-port = 2121"),
        "confserv.conf: [confserv] port: the value goes on over an indented line "
        "(options start at the line's start)",
    ),
]


@pytest.mark.parametrize(("change", "message"), ERRORS)
def test_error_line(here: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in MINIMAL
    err = error_of(MINIMAL.replace(old, new, 1))
    expected = message if message.startswith("confserv.conf: ") else f"confserv.conf: {message}"
    assert str(err) == expected
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("log", "level = debug", "confserv.conf: [log] level: unknown option"),
        (
            "log",
            "verbose = loud",
            "confserv.conf: [log] verbose: 'loud' is not one of "
            "all, debug, trace, interaction, standard, none",
        ),
        ("history-log", "expire = 3", "confserv.conf: [history-log] expire: unknown option"),
        (
            "history-log",
            "expiration = 31",
            "confserv.conf: [history-log] expiration: '31' is not a number of days (1 to 30)",
        ),
        (
            "history-log",
            "audit-max-records = 0",
            "confserv.conf: [history-log] audit-max-records: "
            "'0' is not a number of records (1 to 1000)",
        ),
    ],
)
def test_error_line_in_log_and_history(here: Path, section: str, line: str, message: str) -> None:
    assert str(error_of(f"{MINIMAL}[{section}]\n{line}\n")) == message


def test_not_utf8(here: Path) -> None:
    Path("confserv.conf").write_bytes(b"[confserv]\nport = 2120\xff\n")
    with pytest.raises(ConfigError) as info:
        load_server_settings("confserv.conf", "confserv")
    assert str(info.value) == (
        "confserv.conf: cannot read the file: not UTF-8 text (byte 22 is not valid)"
    )


def test_error_attributes_and_pickling(here: Path) -> None:
    err = error_of(MINIMAL.replace("port = 2120", "port = abc"))
    assert (err.file, err.section, err.option) == (Path("confserv.conf"), "confserv", "port")
    assert err.detail == "'abc' is not a port number (1 to 65535)"
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.section, again.option) == (str(err), "confserv", "port")


def test_every_key_of_the_seed_is_known(here: Path) -> None:
    sections = read_sections(write(SEED_PRIMARY))
    assert set(sections["confserv"]) <= SERVER_OPTIONS
    assert set(sections["dbserver"]) <= DATABASE_OPTIONS
    assert set(sections["log"]) <= LOG_OPTIONS
    assert set(read_sections(write(SEED_BACKUP))["Backup CS"]) <= SERVER_OPTIONS


# -- properties --------------------------------------------------------------------

_SECTIONS_READ = {
    "confserv": SERVER_OPTIONS,
    "dbserver": DATABASE_OPTIONS,
    "log": LOG_OPTIONS,
    "history-log": HISTORY_OPTIONS,
}

_NAME_CHARS = st.one_of(
    st.characters(categories=("L", "N")),
    st.sampled_from(string.punctuation.replace("=", "").replace("[", "")),
)
_names = st.text(_NAME_CHARS, min_size=1, max_size=30).filter(
    lambda name: name[0] not in "#;" and name == name.strip()
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_names, section=st.sampled_from(sorted(_SECTIONS_READ)))
def test_any_unknown_option_is_named(tmp_path: Path, name: str, section: str) -> None:
    option = name.lower()
    assume(option not in _SECTIONS_READ[section])
    path = tmp_path / "confserv.conf"
    path.write_text(
        f"{MINIMAL}[log]\n[history-log]\n".replace(f"[{section}]\n", f"[{section}]\n{name} = 1\n"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_server_settings(path, "confserv")
    assert str(info.value) == f"{path}: [{section}] {option}: unknown option"
    assert (info.value.section, info.value.option) == (section, option)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(port=st.integers(1, 65535), management=st.integers(1, 65535), spaces=st.booleans())
def test_any_port_round_trips(tmp_path: Path, port: int, management: int, spaces: bool) -> None:
    assume(port != management)
    eq = " = " if spaces else "="
    path = tmp_path / "confserv.conf"
    path.write_text(
        MINIMAL.replace("port = 2120", f"port{eq}{port}").replace(
            "management-port = 2121", f"management-port{eq}{management}"
        ),
        encoding="utf-8",
    )
    got = load_server_settings(path, "confserv")
    assert (got.port, got.management_port) == (port, management)
