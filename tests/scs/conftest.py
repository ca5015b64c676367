"""Fixtures of the supervisor's tests: a running system under ``scs -f``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers.agents import AgentProcess
from ..helpers.system import System


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """The generated pair and proxy under a running ``scs``; at the end, nothing of it
    may be left running."""
    sys_ = System(tmp_path)
    sys_.start()
    try:
        yield sys_
    finally:
        sys_.stop()
        leftovers = subprocess.run(
            ["pgrep", "-f", str(sys_.conf)], capture_output=True, text=True
        ).stdout.split()
        for pid in leftovers:  # killed, so that a failure does not leave them running
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        assert leftovers == [], f"processes left behind: {leftovers}"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    """The host agent of "hostA", running; killed at the end."""
    process = AgentProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.kill()
