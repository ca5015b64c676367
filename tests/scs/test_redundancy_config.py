"""``[scs] database`` and the supervisor lease's options: defaults, and one line per mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from confserv.config.settings import ConfigError
from scs.config import ScsSettings, load_scs_settings

from .test_config import GOOD

DB = "[scsdb]\ndbengine = sqlite\ndbname = cfg.sqlite\n"


def load(tmp_path: Path, own: str, extra: str = DB) -> ScsSettings:
    conf = tmp_path / "scs.conf"
    conf.write_text(GOOD.replace("[scs]\n", f"[scs]\n{own}", 1) + extra)
    return load_scs_settings(conf)


def test_without_a_database_there_is_no_election_and_stop_stops_the_servers(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path, "", extra="")
    assert settings.redundancy is None
    assert settings.on_stop == "stop-servers"


def test_the_database_section_is_read_as_a_database_not_as_a_server(tmp_path: Path) -> None:
    settings = load(tmp_path, "database = scsdb\n")
    spec = settings.redundancy
    assert spec is not None
    assert spec.database.engine == "sqlite"
    assert spec.database.dbname == str((tmp_path / "cfg.sqlite").resolve())
    assert (spec.ttl, spec.renew, spec.retry) == (6.0, 2.0, 1.0)
    assert settings.on_stop == "leave-running"
    assert "scsdb" not in settings.servers


def test_timings_and_on_stop_are_read(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "database = scsdb\nsupervisor-lease-ttl = 3\nsupervisor-lease-renew = 1\n"
        "supervisor-lease-retry = 0.2\non-stop = stop-servers\n",
    )
    assert settings.redundancy is not None
    assert (settings.redundancy.ttl, settings.redundancy.renew) == (3.0, 1.0)
    assert settings.redundancy.retry == 0.2
    assert settings.on_stop == "stop-servers"


@pytest.mark.parametrize(
    ("own", "extra", "where", "says"),
    [
        ("database = nowhere\n", DB, "[scs] database", "no section [nowhere]"),
        ("database = scs\n", DB, "[scs] database", "no section [scs]"),
        ("database = scsdb\n", "[scsdb]\ndbname = x\n", "[scsdb] dbengine", "missing"),
        (
            "database = scsdb\n",
            "[scsdb]\ndbengine = sqlite\ndbname = x\nport = 1\nfoo = 1\n",
            "[scsdb] foo",
            "unknown option",
        ),
        ("supervisor-lease-ttl = 3\n", "", "[scs] supervisor-lease-ttl", "without [scs] database"),
        (
            "database = scsdb\nsupervisor-lease-ttl = 2\nsupervisor-lease-renew = 2\n",
            DB,
            "[scs] supervisor-lease-renew",
            "must be less than ttl",
        ),
        (
            "database = scsdb\nsupervisor-lease-ttl = 0\n",
            DB,
            "[scs] supervisor-lease-ttl",
            "not a number of seconds",
        ),
        (
            "database = scsdb\nsupervisor-lease-retry = 0\n",
            DB,
            "[scs] supervisor-lease-retry",
            "not a number of seconds",
        ),
        ("on-stop = later\n", "", "[scs] on-stop", "not one of stop-servers, leave-running"),
    ],
)
def test_each_mistake_is_one_line_naming_section_and_key(
    tmp_path: Path, own: str, extra: str, where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, own, extra)
    text = str(caught.value)
    assert where in text, text
    assert says in text, text
    assert "\n" not in text


def test_scs_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    conf = tmp_path / "scs.conf"
    conf.write_text(GOOD.replace("[scs]\n", "[scs]\ndatabase = nowhere\n", 1))
    scs = Path(sys.executable).parent / "scs"
    done = subprocess.run([str(scs), "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "[scs] database" in done.stderr
    assert "Traceback" not in done.stderr
