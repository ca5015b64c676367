"""``scs`` refuses in one line, never a traceback: a port of ``[scs]`` already in use.

The ports are bound before any server is started, so the refusal leaves
nothing behind (it used to be 160-215 lines of traceback, after the servers
had been started and then stopped again).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from ..helpers.system import BIN, IDLE_PAIR

CONF = (
    """[scs]
control-port = {control}
control-secret = x
{extra}
"""
    + IDLE_PAIR
)


@pytest.mark.parametrize("option", ["control-port", "http-port"])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, option: str) -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        socket.create_server(("127.0.0.1", 0)) as free,
    ):
        taken = busy.getsockname()[1]
        other = free.getsockname()[1]
        free.close()
        if option == "control-port":
            text = CONF.format(control=taken, extra="")
        else:
            text = CONF.format(control=other, extra=f"http-port = {taken}")
        conf = tmp_path / "scs.conf"
        conf.write_text(text)
        conf.chmod(0o600)
        done = subprocess.run(
            [str(BIN / "scs"), "-f", str(conf)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert all(" 40003 " in line for line in lines[:-1]), done.stderr  # the control port's
    assert lines[-1].startswith("scs: ")
    assert f"cannot listen on 127.0.0.1:{taken} ([scs] {option})" in done.stderr
    assert "Address already in use" in done.stderr
