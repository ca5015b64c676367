"""The etcd of the benchmark (bench/etcd_peer.py): it starts on loopback, answers a put and
a range through the JSON gateway, a watcher decodes the write, and it is gone afterwards."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from bench.etcd_peer import EtcdClient, Watcher, etcd_binary, host_value, running_etcd
from tests.helpers.debian import ProgramUnavailable

#: Seconds a watcher gets to see the write.
WATCH_DEADLINE = 5.0


@pytest.fixture(scope="module")
def binary() -> str:
    """etcd's path (installed when missing, as root); skipped where it cannot be had,
    failing under CI."""
    try:
        return etcd_binary()
    except ProgramUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def listening(pid: int) -> set[str]:
    """The local addresses (``/proc/net/tcp`` hex) on which process ``pid`` listens."""
    fds = Path(f"/proc/{pid}/fd")
    inodes = {
        os.readlink(fd)[8:-1] for fd in fds.iterdir() if os.readlink(fd).startswith("socket:[")
    }
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1])
    return found


def test_etcd_answers_put_range_and_watch_on_loopback_then_is_gone(binary: str) -> None:
    with running_etcd(binary) as etcd:
        data_dir = etcd.log.parent
        local = listening(etcd.pid)
        assert f"0100007F:{etcd.port:04X}" in local
        assert all(addr.startswith("0100007F:") for addr in local), local
        client = EtcdClient(etcd.port)
        watcher = Watcher(etcd.port, "bench-host-7")
        try:
            revision = client.put("bench-host-7", host_value(7))
            assert client.get("bench-host-7") == {
                "type": "Host",
                "name": "bench-host-7",
                "state": "enabled",
                "folder_dbid": None,
                "tenant_dbid": 1,
                "ip_address": "127.0.0.1",
                "os_type": "unix",
                "lca_port": 4999,
                "options": {},
                "dbid": 7,
            }
            assert client.get("bench-host-7", serializable=True)["dbid"] == 7
            assert client.get("bench-host-8") is None
            seen: list[int] = []
            deadline = time.monotonic() + WATCH_DEADLINE
            while not seen and time.monotonic() < deadline:
                if select.select([watcher.sock], [], [], deadline - time.monotonic())[0]:
                    seen += watcher.revisions()
            assert seen == [revision]
        finally:
            watcher.sock.close()
            client.close()
        proc = etcd.proc
    assert proc.returncode is not None
    assert not data_dir.exists()
