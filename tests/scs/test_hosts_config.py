"""scs.conf's host sections: servers placed on hosts and their agents, and every
misconfiguration one line naming section and key (tests/scs/test_config.py has the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from confserv.config.settings import ConfigError
from scs import proof
from scs.config import load_scs_settings
from scs.hosts import AGENT_PORT, database_engine

PAIR = """[scs]
control-port = 2190
control-secret = s
[a]
host = {host_a}
port = 3000
server = b
management-port = 3001
management-secret = x
command = confserv -s a -c {conf}
[b]
host = {host_b}
port = 3010
server = a
management-port = 3011
management-secret = x
command = confserv -s b -c {conf}
"""

HOSTS = """[hostA]
type = host
address = 198.18.0.1
agent-port = 5000
agent-secret = sa
[hostB]
type = host
address = 198.18.0.2
agent-secret = sb
"""


def write(tmp_path: Path, text: str, engine: str = "postgre") -> Path:
    (tmp_path / "cs.conf").write_text(
        f"[a]\nserver = db\n[b]\nserver = db\n[db]\ndbengine = {engine}\ndbname = cfg\n"
    )
    path = tmp_path / "scs.conf"
    path.write_text(text.replace("{conf}", str(tmp_path / "cs.conf")))
    path.chmod(0o600)
    return path


def test_servers_are_placed_on_their_hosts(tmp_path: Path) -> None:
    text = PAIR.format(host_a="hostA", host_b="hostB", conf="{conf}") + HOSTS
    settings = load_scs_settings(write(tmp_path, text))
    a, b = settings.servers["a"], settings.servers["b"]
    assert (a.machine, a.host) == ("hostA", "198.18.0.1")
    assert (b.machine, b.host) == ("hostB", "198.18.0.2")
    assert settings.hosts["hostA"].agent_port == 5000
    assert settings.hosts["hostB"].agent_port == AGENT_PORT  # the Genesys default
    for host in settings.hosts.values():  # the agent link always runs ADDP, 1 s by default
        assert host.addp.enabled
        assert (host.addp.timeout, host.addp.remote_timeout) == (1.0, 1.0)
    assert set(settings.servers) == {"a", "b"}  # a host section is no server


def test_a_server_whose_host_is_an_address_is_the_supervisors_own(tmp_path: Path) -> None:
    # Matched by name only: hostA's address does not place a server on hostA.
    text = PAIR.format(host_a="198.18.0.1", host_b="198.18.0.1", conf="{conf}") + HOSTS
    settings = load_scs_settings(write(tmp_path, text))
    assert settings.servers["a"].machine is None
    assert settings.servers["b"].machine is None


def test_a_host_without_an_agent_is_the_supervisors_own(tmp_path: Path) -> None:
    own = "[here]\ntype = host\naddress = 127.0.0.1\n"
    text = PAIR.format(host_a="here", host_b="hostA", conf="{conf}") + HOSTS + own
    settings = load_scs_settings(write(tmp_path, text))
    assert settings.servers["a"].machine is None
    assert settings.servers["a"].host == "127.0.0.1"
    assert settings.servers["b"].machine == "hostA"


def test_a_pair_across_hosts_on_sqlite_is_refused_with_one_line(tmp_path: Path) -> None:
    text = PAIR.format(host_a="hostA", host_b="hostB", conf="{conf}") + HOSTS
    with pytest.raises(ConfigError) as caught:
        load_scs_settings(write(tmp_path, text, engine="sqlite"))
    line = str(caught.value)
    assert "\n" not in line
    for word in ("[a]", "host", "SQLite", "PostgreSQL"):
        assert word in line, line


def test_a_pair_on_one_agent_host_may_use_sqlite(tmp_path: Path) -> None:
    text = PAIR.format(host_a="hostA", host_b="hostA", conf="{conf}") + HOSTS
    settings = load_scs_settings(write(tmp_path, text, engine="sqlite"))
    assert settings.servers["a"].machine == settings.servers["b"].machine == "hostA"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("[h]\ntype = host\nagent-port = 5000\n", ["[h]", "agent-secret", "missing"]),
        ("[h]\ntype = host\nagent-secret = s\nbogus = 1\n", ["[h]", "bogus"]),
        ("[h]\ntype = host\nagent-secret = s\nagent-port = 99999\n", ["[h]", "agent-port"]),
        ("[h]\ntype = host\ntls-server-name = x\n", ["[h]", "tls-server-name"]),
        ("[h1]\ntype = host\n[h2]\ntype = host\n", ["h1", "h2", "agent"]),
        ("[h]\ntype = host\nagent-secret = s\nencryption = maybe\n", ["[h]", "encryption"]),
        ("[h]\ntype = host\nagent-secret = s\naddp-timeout = -1\n", ["[h]", "addp-timeout"]),
        ("[h]\ntype = host\naddp-timeout = 2\n", ["[h]", "addp-timeout", "agent"]),
    ],
)
def test_each_broken_host_section_is_one_line(tmp_path: Path, extra: str, words: list[str]) -> None:
    text = PAIR.format(host_a="127.0.0.1", host_b="127.0.0.1", conf="{conf}") + extra
    with pytest.raises(ConfigError) as caught:
        load_scs_settings(write(tmp_path, text))
    line = str(caught.value)
    assert "\n" not in line
    for word in words:
        assert word in line, line


def test_the_database_engine_is_read_from_the_servers_own_file(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\nserver = db\n[db]\ndbengine = SQLite\n")
    assert database_engine(("confserv", "-s", "a", "-c", "c.conf"), tmp_path) == "sqlite"
    assert database_engine(("confserv", "--section=a", "--config", str(conf)), tmp_path) == "sqlite"
    # What cannot be told is None (the server says what is wrong with its own file).
    assert database_engine(("confserv", "-s", "a", "-c", "missing.conf"), tmp_path) is None
    assert database_engine(("confserv", "-c", str(conf)), tmp_path) is None
    assert database_engine(("confserv", "-s", "zz", "-c", str(conf)), tmp_path) is None


def test_an_exit_learnt_after_the_failover_is_not_a_primary_dying() -> None:
    assert proof.superseded(2, True, 3)
    assert not proof.superseded(3, True, 3)  # the same epoch: not replaced
    assert not proof.superseded(2, False, 3)  # the peer is not up as primary
    assert not proof.superseded(None, True, 3)
    assert not proof.superseded(2, True, None)


def test_scs_status_names_each_servers_host(tmp_path: Path) -> None:
    import random

    from scs.core import SupervisorCore
    from scs.render import status_table

    text = PAIR.format(host_a="hostA", host_b="127.0.0.1", conf="{conf}") + HOSTS
    core = SupervisorCore(load_scs_settings(write(tmp_path, text)), random.Random(1))
    rows = {r["section"]: r for r in core.snapshot(0.0)}
    assert rows["a"]["host"] == "hostA"
    assert rows["b"]["host"] is None  # the supervisor's own host
    assert [c.header for c in status_table(list(rows.values())).columns][:2] == ["server", "host"]
