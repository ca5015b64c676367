"""The import rules of ``docs/design.md``, checked on the source (AST), transitively.

The checker walks every module of every subpackage, resolves relative imports
(``from ..store import base``) to the modules they name, and counts the parent
packages a module's import runs (importing ``confserv.store.base`` runs
``confserv/__init__.py`` and ``confserv/store/__init__.py``). Every import
counts, also inside functions and under ``TYPE_CHECKING``: a rule that an
annotation could dodge would not be a rule. The rules:

- ``addp`` reaches nothing of ``confserv``, ``scs`` or ``lca``; ``confserv``
  nothing of ``scs`` or ``lca``; ``lca`` nothing of ``confserv`` or ``scs``.
- ``confserv``'s subpackages are layers: each imports only the layers
  below it (:data:`LAYERS`), so the client library reaches neither the
  server, the store, nor SQLAlchemy.
- The pure cores (:data:`PURE`) reach no trio, asyncio, socket, clock,
  thread, process or database library (their own package's facade aside,
  see :func:`_facades`).
- Only ``confserv.store.postgres`` imports asyncio, asyncpg or trio_asyncio.
- No import cycle between modules.

Each rule is shown failing on a planted violation in a tree of its own
(``test_each_rule_catches_a_planted_violation``), so that a checker that had
stopped looking could not pass.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("addp", "confserv", "lca", "scs")

#: Each layer of ``confserv`` and the layers it may import directly.
LAYERS: dict[str, frozenset[str]] = {
    "wire": frozenset(),
    "logs": frozenset(),
    "config": frozenset({"wire"}),
    "model": frozenset({"wire"}),
    "store": frozenset({"wire", "config", "model"}),
    "client": frozenset({"wire"}),
    "core": frozenset({"wire", "logs", "config", "model", "store"}),
    "ha": frozenset({"wire", "logs", "config", "model", "store", "client", "core"}),
    "http": frozenset({"wire", "logs", "core"}),
    "server": frozenset(
        {"wire", "logs", "config", "model", "store", "client", "core", "ha", "http"}
    ),
    "admin": frozenset({"wire", "logs", "config", "model", "store", "client", "core"}),
}

#: What the client library must never reach, even through another module.
CLIENT_FORBIDDEN = ("confserv.server", "confserv.store", "confserv.core", "confserv.ha")
CLIENT_FORBIDDEN_LIBS = frozenset({"sqlalchemy", "sqlmodel", "asyncpg"})

#: The sans-IO cores: decisions and protocol machines, fed events and the time.
PURE = (
    "addp._frames",
    "addp._keepalive",
    "addp._connection",
    "addp._options",
    "addp._events",
    "addp._guard",
    "addp._peer_text",
    "addp.auth",
    "lca.protocol",
    "lca.core",
    "confserv.core.supervisor_fence",
    "confserv.http.probe",
    "confserv.ha.roles",
    "confserv.ha.membership",
    "confserv.ha.follower",
    "confserv.server.rotation",
    "confserv.core.backlog",
    "confserv.core.commit_guard",
    "confserv.core.auth_backoff",
    "confserv.wire.auth",
    "confserv.core.object_size",
    "confserv.logs.ratelimit",
    "confserv.server.read_chunks",
    "confserv.config.permissions",
    "confserv.client.reconnect",
    "confserv.logs.catalog",
    "confserv.model.objects",
    "confserv.model.access",
    "confserv.store.plan",
    "scs.core",
    "scs.proof",
    "scs.restarts",
    "scs.state",
    "scs.actions",
    "scs.events",
    "scs.observations",
    "scs.status",
    "scs.pair_machine",
    "scs.pair",
    "scs.failover",
    "scs.pair_control",
    "scs.startup",
    "scs.view",
    "scs.launcher",
)
IMPURE_LIBS = frozenset(
    {
        "trio",
        "trio_asyncio",
        "asyncio",
        "asyncpg",
        "socket",
        "select",
        "selectors",
        "time",
        "threading",
        "subprocess",
        "signal",
        "fcntl",
        "sqlite3",
        "sqlalchemy",
        "sqlmodel",
    }
)
ASYNCIO_LIBS = frozenset({"asyncio", "asyncpg", "trio_asyncio"})
ASYNCIO_HOME = "confserv.store.postgres"


@dataclass
class Graph:
    """Modules of the checked packages, each with what it imports directly."""

    internal: dict[str, set[str]]  # module -> modules of the checked packages
    external: dict[str, set[str]]  # module -> top-level names of other libraries
    explicit: dict[str, set[str]]  # the part of ``internal`` written as imports (no parents)

    def reach(self, start: str, skip: frozenset[str] = frozenset()) -> tuple[set[str], set[str]]:
        """Every module and every outside library ``start`` runs when imported."""
        seen: set[str] = set()
        libs: set[str] = set()
        todo = [start]
        while todo:
            name = todo.pop()
            if name in seen or name in skip:
                continue
            seen.add(name)
            libs |= self.external.get(name, set())
            todo.extend(self.internal.get(name, set()))
        seen.discard(start)
        return seen, libs

    def path(self, start: str, goal: str) -> list[str]:
        """One import chain from ``start`` to ``goal`` (for the failure message)."""
        parent: dict[str, str] = {}
        todo = [start]
        while todo:
            name = todo.pop(0)
            for nxt in sorted(self.internal.get(name, ())):
                if nxt not in parent and nxt != start:
                    parent[nxt] = name
                    todo.append(nxt)
        chain = [goal]
        while chain[-1] != start and chain[-1] in parent:
            chain.append(parent[chain[-1]])
        return list(reversed(chain))

    def cycles(self) -> list[list[str]]:
        """Import cycles between modules (strongly connected parts of the graph).

        Only imports written in the source count: a package's ``__init__``
        importing its own modules is not a cycle with them.
        """
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:  # Tarjan, on a graph of a few hundred modules
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in self.explicit.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                part = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    part.append(w)
                    if w == v:
                        break
                if len(part) > 1:
                    found.append(sorted(part))

        for v in sorted(self.explicit):
            if v not in index:
                visit(v)
        return found


def module_files(root: Path, packages: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """Every module of ``packages`` under ``root``, with its dotted name."""
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def build(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> Graph:
    """Read every module's imports, relative ones resolved, parent packages counted."""
    files = dict(module_files(root, packages))
    internal: dict[str, set[str]] = {name: set() for name in files}
    external: dict[str, set[str]] = {name: set() for name in files}
    explicit: dict[str, set[str]] = {name: set() for name in files}

    def add(module: str, dotted: str) -> None:
        if dotted.split(".")[0] not in packages:
            external[module].add(dotted.split(".")[0])
            return
        if dotted not in files:
            raise AssertionError(f"{module} imports {dotted}, which does not exist")
        if dotted != module:
            explicit[module].add(dotted)
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):  # its parent packages run first
            name = ".".join(parts[:i])
            if name != module and name in files:
                internal[module].add(name)

    for module, path in files.items():
        is_package = path.name == "__init__.py"
        parents = module.split(".")[:-1]
        internal[module].update(".".join(parents[:i]) for i in range(1, len(parents) + 1))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(module, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    dotted = ".".join(base + ([node.module] if node.module else []))
                else:
                    dotted = node.module or ""
                add(module, dotted)
                for alias in node.names:  # ``from pkg import module``
                    if f"{dotted}.{alias.name}" in files:
                        add(module, f"{dotted}.{alias.name}")
    return Graph(internal, external, explicit)


def _facades(module: str) -> frozenset[str]:
    """The packages around a pure core: their ``__init__`` is the package's facade.

    ``addp/__init__.py`` re-exports the trio adapter beside the pure machines;
    importing ``addp._frames`` runs it, but the core itself reaches none of it.
    Every other package a core imports counts in full.
    """
    parts = module.split(".")
    return frozenset(".".join(parts[:i]) for i in range(1, len(parts)))


def violations(graph: Graph) -> list[str]:
    """Every broken rule, one line each naming the chain of imports that breaks it."""
    bad: list[str] = []
    for module in sorted(graph.internal):
        reached, libs = graph.reach(module)
        top, _, rest = module.partition(".")
        forbidden = {
            "addp": ("confserv", "scs", "lca"),
            "confserv": ("scs", "lca"),
            "lca": ("confserv", "scs"),  # the agent uses only addp
        }.get(top, ())
        for other in sorted(reached):
            if other.split(".")[0] in forbidden:
                bad.append(f"{module} reaches {other}: {' -> '.join(graph.path(module, other))}")
        if top == "confserv" and rest:
            layer = rest.split(".")[0]
            allowed = LAYERS.get(layer)
            if allowed is None:
                bad.append(f"{module}: confserv.{layer} is not a known layer (add it to LAYERS)")
                continue
            for other in sorted(graph.internal[module]):
                o_top, _, o_rest = other.partition(".")
                o_layer = o_rest.split(".")[0]
                if o_top == "confserv" and o_rest and o_layer != layer and o_layer not in allowed:
                    bad.append(
                        f"{module} imports {other}: {layer} may import only {sorted(allowed)}"
                    )
            if layer == "client":
                for other in sorted(reached):
                    if other.startswith(CLIENT_FORBIDDEN):
                        chain = " -> ".join(graph.path(module, other))
                        bad.append(f"the client library reaches {other}: {chain}")
                if libs & CLIENT_FORBIDDEN_LIBS:
                    bad.append(
                        f"the client library {module} loads {sorted(libs & CLIENT_FORBIDDEN_LIBS)}"
                    )
        if module in PURE:
            _, core_libs = graph.reach(module, skip=_facades(module))
            if core_libs & IMPURE_LIBS:
                bad.append(f"pure core {module} reaches {sorted(core_libs & IMPURE_LIBS)}")
        if module != ASYNCIO_HOME and graph.external[module] & ASYNCIO_LIBS:
            bad.append(f"{module} imports {sorted(graph.external[module] & ASYNCIO_LIBS)}")
    for cycle in graph.cycles():
        bad.append(f"import cycle: {' <-> '.join(cycle)}")
    return bad


def test_the_packages_keep_every_rule() -> None:
    assert violations(build()) == []


def test_the_checker_sees_every_module() -> None:
    graph = build()
    for name in ("confserv.store.postgres", "confserv.client.session", "scs.core", *PURE):
        assert name in graph.internal, name
    # relative imports are resolved: the server's app reaches the store through them
    reached, libs = graph.reach("confserv.server.app")
    assert "confserv.store.base" in reached
    assert "sqlmodel" in libs


def _plant(root: Path, files: dict[str, str]) -> Graph:
    """A small tree of the four packages with one planted violation."""
    base = {
        "addp/__init__.py": "",
        "addp/_frames.py": "",
        "confserv/__init__.py": "",
        "confserv/wire/__init__.py": "",
        "confserv/wire/errors.py": "",
        "confserv/client/__init__.py": "",
        "confserv/client/session.py": "from ..wire import errors\n",
        "confserv/store/__init__.py": "",
        "confserv/store/base.py": "import sqlmodel\n",
        "confserv/store/postgres.py": "import asyncpg\n",
        "confserv/server/__init__.py": "",
        "confserv/server/app.py": "from confserv.store import base\n",
        "confserv/ha/__init__.py": "",
        "confserv/ha/roles.py": "import enum\n",
        "lca/__init__.py": "",
        "lca/processes.py": "import addp._frames\n",
        "scs/__init__.py": "",
        "scs/core.py": "from confserv.ha.roles import *\n",
    }
    for name, text in (base | files).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return build(root)


PLANTED = {
    "addp reaches confserv, through a module of its own": (
        {"addp/_frames.py": "from . import _helper\n", "addp/_helper.py": "import confserv.wire\n"},
        "addp._frames reaches confserv",
    ),
    "confserv reaches scs": ({"confserv/wire/errors.py": "import scs.core\n"}, "reaches scs"),
    "the agent reaches confserv": (
        {"lca/processes.py": "from confserv.wire import errors\n"},
        "lca.processes reaches confserv",
    ),
    "confserv reaches the agent": (
        {"confserv/wire/errors.py": "import lca.processes\n"},
        "reaches lca",
    ),
    "a layer imports one above it": (
        {"confserv/store/base.py": "from ..server import app\n"},
        "store may import only",
    ),
    "the client reaches the store through a lower module": (
        {"confserv/wire/errors.py": "from confserv.store import base\n"},
        "the client library reaches confserv.store",
    ),
    "the client loads SQLAlchemy": (
        {"confserv/client/session.py": "import sqlalchemy\n"},
        "loads ['sqlalchemy']",
    ),
    "a pure core reaches trio through a package it imports": (
        {
            "confserv/wire/__init__.py": "import trio\n",
            "confserv/ha/roles.py": "from ..wire import errors\n",
        },
        "pure core confserv.ha.roles reaches ['trio']",
    ),
    "a pure core reads the clock through another core": (
        {
            "confserv/ha/roles.py": "from confserv.wire import errors\n",
            "confserv/wire/errors.py": "import time\n",
        },
        "pure core scs.core reaches ['time']",
    ),
    "asyncio outside the PostgreSQL store": (
        {"confserv/store/base.py": "import trio_asyncio\n"},
        "confserv.store.base imports ['trio_asyncio']",
    ),
    "an import cycle": (
        {
            "confserv/server/app.py": "from . import proxy\n",
            "confserv/server/proxy.py": "from .app import x\n",
        },
        "import cycle: confserv.server.app <-> confserv.server.proxy",
    ),
    "an unknown layer": ({"confserv/extra/__init__.py": ""}, "not a known layer"),
}


def test_a_clean_planted_tree_passes(tmp_path: Path) -> None:
    assert violations(_plant(tmp_path, {})) == []


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_rule_catches_a_planted_violation(tmp_path: Path, case: str) -> None:
    files, expected = PLANTED[case]
    found = violations(_plant(tmp_path, files))
    assert any(expected in line for line in found), found


def test_an_import_of_a_module_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="does not exist"):
        _plant(tmp_path, {"confserv/server/app.py": "from ..gone import x\n"})


def test_cfgctl_and_scs_start_without_sqlalchemy() -> None:
    """Only ``cfgctl init`` needs the store: an HMAC must not cost an ORM (issue 11)."""
    import subprocess
    import sys

    code = (
        "import sys, confserv.admin.cfgctl, scs.cli; "
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'asyncpg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
