"""The import rules of the design, checked on the source (AST), not by convention.

- ``addp`` imports nothing of ``confserv`` or ``scs``; ``confserv`` nothing of ``scs``.
- The sans-IO cores of ``addp`` import no trio, asyncio, socket or time.
- Only ``confserv/pg_store.py`` imports asyncio, asyncpg or trio_asyncio.
- Decision logic (``confserv/roles.py``, ``scs/core.py``) imports no trio and no clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"), [("addp", {"confserv", "scs"}), ("confserv", {"scs"})]
)
def test_imports_go_one_way(package: str, forbidden: set[str]) -> None:
    for path in modules(package):
        assert not imports(path) & forbidden, f"{path.name} imports {imports(path) & forbidden}"


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "addp" / name
        for name in ("_frames.py", "_keepalive.py", "_connection.py", "_options.py", "_events.py")
    ]
    + [ROOT / "confserv" / "roles.py", ROOT / "scs" / "core.py"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sans_io_cores_touch_no_io_and_no_clock(path: Path) -> None:
    assert not imports(path) & {"trio", "asyncio", "socket", "time", "select"}


def test_asyncio_is_confined_to_the_postgresql_store() -> None:
    for package in ("addp", "confserv", "scs"):
        for path in modules(package):
            if path.name == "pg_store.py":
                continue
            bad = imports(path) & {"asyncio", "asyncpg", "trio_asyncio"}
            assert not bad, f"{package}/{path.name} imports {bad}"
