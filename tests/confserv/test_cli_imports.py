"""The command-line tools start light (issue 15: "no SQLAlchemy import for a status call").

Each entry point runs in a fresh interpreter as its console script does;
afterwards the test reads which heavy packages it imported. ``--version``
and ``--help`` import neither the store (SQLAlchemy, sqlmodel, asyncpg) nor
trio, rich or yaml; ``cfgctl status`` (a real call, to a port that refuses)
imports trio for its connection, never the store. The times are
bench/bench_cli_start.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.system import IDLE_PAIR, free_port

STORE = ("sqlalchemy", "sqlmodel", "asyncpg")
LIGHT = (*STORE, "trio", "rich", "yaml")

PROBE = """
import json, sys
sys.argv = {argv!r}
from {module} import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))
"""


def imported(module: str, argv: list[str], watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` the entry point ``module:main`` imported running ``argv``."""
    code = PROBE.format(argv=argv, module=module, watched=watched)
    env = {"CFG_SECRET": "s", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("confserv.admin.cfgctl", ["cfgctl", "--version"]),
        ("confserv.admin.cfgctl", ["cfgctl", "status", "--help"]),
        ("confserv.admin.cfgctl", ["cfgctl", "get", "--help"]),
        ("confserv.server.cli", ["confserv", "--version"]),
        ("lca.cli", ["lca", "--version"]),
        ("scs.cli", ["scs", "--version"]),
        ("scs.cli", ["scs", "status", "--help"]),
        ("scs.cli", ["scs", "history", "--help"]),
    ],
)
def test_version_and_help_import_neither_the_store_nor_trio_rich_yaml(
    module: str, argv: list[str]
) -> None:
    assert imported(module, argv, LIGHT) == []


def test_a_status_call_imports_trio_but_not_the_store() -> None:
    argv = ["cfgctl", "status", "--server", f"127.0.0.1:{free_port()}"]
    assert imported("confserv.admin.cfgctl", argv, (*STORE, "trio")) == ["trio"]


def test_scs_status_imports_trio_but_neither_the_store_nor_the_supervisor(tmp_path) -> None:
    conf = tmp_path / "scs.conf"
    conf.write_text(f"[scs]\ncontrol-port = {free_port()}\ncontrol-secret = x\n{IDLE_PAIR}")
    conf.chmod(0o600)
    watched = (*STORE, "trio", "scs.supervisor", "prometheus_client")
    assert imported("scs.cli", ["scs", "status", "-f", str(conf)], watched) == ["trio"]


def test_cfgctl_types_imports_nothing_heavy() -> None:
    assert imported("confserv.admin.cfgctl", ["cfgctl", "types", "Host"], LIGHT) == []
