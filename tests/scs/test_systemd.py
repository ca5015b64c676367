"""Readiness for systemd (``Type=notify``): ``READY=1`` on ``$NOTIFY_SOCKET``, once ready.

A UNIX datagram socket stands in for systemd's. The supervisor sends it once
its ports listen; it takes the variable out of the environment first, so the
servers it starts do not answer for it. A ``confserv`` run on its own (as a
unit of its own) and ``lca`` send it too.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import trio

from ..helpers.system import BIN, System, free_port, healthy


def datagrams(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            return got


async def said_on_start(command: list[str], sock: socket.socket) -> list[bytes]:
    """Run ``command`` until it has sent something on ``sock``; what it sent."""
    process = await trio.lowlevel.open_process(command)
    try:
        with trio.fail_after(30):
            while not (got := datagrams(sock)):
                await trio.sleep(0.05)
        return got
    finally:
        process.terminate()
        with trio.fail_after(30):
            await process.wait()


async def test_scs_and_lca_say_ready_and_the_servers_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        system = System(tmp_path)
        system.start()
        try:
            await system.wait(healthy, timeout=60)
            await trio.sleep(0.5)  # any late datagram of a server would have come by now
            assert datagrams(sock) == [b"READY=1"]  # the supervisor's alone
        finally:
            system.stop()
        conf = tmp_path / "lca.conf"
        conf.write_text(
            f"[lca]\nport = {free_port()}\nagent-secret = s\nstate-dir = {tmp_path / 'lca-state'}\n"
        )
        conf.chmod(0o600)
        assert await said_on_start([str(BIN / "lca"), "-c", str(conf)], sock) == [b"READY=1"]


def test_nothing_is_sent_without_a_service_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    from confserv.logs.systemd import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    assert notify("READY=1") is False  # advice only: no error
    assert sys.platform.startswith("linux")
    assert os.environ["NOTIFY_SOCKET"] == "/nonexistent/socket"


async def test_a_confserv_of_its_own_says_ready_once_its_ports_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify.sock")
    conf = tmp_path / "proxy.conf"
    conf.write_text(
        f"[proxy]\nmode = proxy\nport = {free_port()}\nmaster = 127.0.0.1:{free_port()}\n"
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        command = [str(BIN / "confserv"), "-s", "proxy", "-c", str(conf)]
        assert await said_on_start(command, sock) == [b"READY=1"]
