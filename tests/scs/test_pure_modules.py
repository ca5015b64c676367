"""The supervisor's decision modules are sans-IO, like scs/core.py (tests/test_architecture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..test_architecture import imports

SCS = Path(__file__).parents[2] / "scs"
PURE = ("core.py", "proof.py", "state.py", "restarts.py", "actions.py")


@pytest.mark.parametrize("name", PURE)
def test_decision_modules_touch_no_io_and_no_clock(name: str) -> None:
    bad = imports(SCS / name) & {"trio", "asyncio", "socket", "time", "select", "os", "fcntl"}
    assert not bad, f"scs/{name} imports {bad}"
