"""``cfgctl import`` cut off, and run again (issue 15).

A 5,000-object import cut off by a failover after 771 said nothing about what
was done or that a re-run is safe. Now: a real server killed (or the import
interrupted) mid-way gives one line, how many of how many, exit status 1; the
same import run again completes and every object is there exactly once; a
failover of the pair during an import is followed to its end; on a terminal a
progress bar runs on stderr.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from confserv.client.session import open_client, open_management

from ..helpers.nodes import Node, lone_primary, pair_nodes
from ..helpers.system import (
    BIN,
    PASSWORD,
    SECRET,
)

pytestmark = pytest.mark.integration

CFGCTL = str(BIN / "cfgctl")
ENV = {**os.environ, "CFG_PASSWORD": PASSWORD, "CFG_SECRET": SECRET}
HOSTS, DNS = 200, 99
TOTAL = HOSTS + 1 + DNS  # the hosts, a switch, its DNs
SAFE = "running the same import again is safe (objects are matched by type and name)"


def export_file(path: Path) -> Path:
    """An export of TOTAL objects from another database: DNs refer to the switch's old dbid."""
    objects: list[dict[str, Any]] = [
        {
            "type": "Host",
            "dbid": 100 + i,
            "name": f"imp-host-{i}",
            "ip_address": f"10.9.{i // 250}.{i % 250}",
        }
        for i in range(HOSTS)
    ]
    objects.append({"type": "Switch", "dbid": 9001, "name": "imp-switch", "switch_type": "sip"})
    objects += [
        {
            "type": "DN",
            "dbid": 5000 + i,
            "name": f"imp-dn-{i}",
            "number": str(7000 + i),
            "switch_dbid": 9001,
        }
        for i in range(DNS)
    ]
    path.write_text(yaml.safe_dump({"format": "cfgha-export", "version": 1, "objects": objects}))
    return path


def start_import(*args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CFGCTL, "import", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
    )


async def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = await trio.to_thread.run_sync(lambda: proc.communicate(timeout=60))
    return proc.returncode, out, err or ""


async def objects_of(node: Node) -> int:
    status = await node.status()
    return -1 if status is None else int(status["objects"])


async def wait_objects(node: Node, at_least: int, proc: subprocess.Popen[str]) -> None:
    """Poll the server's object count until ``at_least`` (the import still running)."""
    with trio.fail_after(60):
        while await objects_of(node) < at_least:
            assert proc.poll() is None, "the import ended before the server could be cut"
            await trio.sleep(0.005)


async def ours(address: tuple[str, int]) -> dict[str, list[dict[str, Any]]]:
    """The imported objects on the server, by type."""
    async with open_client([address], app="check", user="default", password=PASSWORD) as c:
        return {
            t: [o for o in await c.read(t) if o["name"].startswith("imp-")]
            for t in ("Host", "Switch", "DN")
        }


def assert_each_once(found: dict[str, list[dict[str, Any]]]) -> None:
    names = {t: sorted(o["name"] for o in objs) for t, objs in found.items()}
    assert names["Host"] == sorted(f"imp-host-{i}" for i in range(HOSTS))
    assert names["DN"] == sorted(f"imp-dn-{i}" for i in range(DNS))
    [switch] = found["Switch"]
    assert {dn["switch_dbid"] for dn in found["DN"]} == {switch["dbid"]}


def summary(out: str) -> dict[str, int]:
    match = re.fullmatch(r"(\d+) created, (\d+) updated, (\d+) unchanged\n", out)
    assert match is not None, out
    return dict(zip(("created", "updated", "unchanged"), map(int, match.groups()), strict=True))


def cut_off(err: str, why: str) -> int:
    """N of the one line ``import cut off after N of TOTAL objects (why); SAFE``."""
    line = re.fullmatch(
        rf"cfgctl: import cut off after (\d+) of {TOTAL} objects \({re.escape(why)}\); "
        rf"{re.escape(SAFE)}\n",
        err,
    )
    assert line is not None, err
    return int(line.group(1))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Node]:
    """One master of a generated file (its pair's backup never started), primary."""
    async with lone_primary(tmp_path) as node:
        yield node


async def test_a_server_killed_mid_way_is_one_line_and_a_rerun_completes(
    server: Node, tmp_path: Path
) -> None:
    exported = export_file(tmp_path / "export.yaml")
    base = await objects_of(server)
    where = f"127.0.0.1:{server.port}"
    proc = start_import(str(exported), "--server", where, "--wait", "2")
    await wait_objects(server, base + 150, proc)
    server.kill()
    code, out, err = await finished(proc)
    assert (code, out) == (1, "")
    done = cut_off(err, "no primary answered within 2 s")
    assert 150 <= done < TOTAL

    server.start()
    await server.wait_role("primary")
    code, out, err = await finished(start_import(str(exported), "--server", where))
    assert (code, err) == (0, "")
    counts = summary(out)
    assert counts["updated"] == 0
    assert counts["unchanged"] in (done, done + 1)  # + the write in flight when killed
    assert counts["created"] + counts["unchanged"] == TOTAL
    assert_each_once(await ours(server.address))


async def test_ctrl_c_is_one_line_and_a_rerun_on_a_terminal_shows_progress(
    server: Node, tmp_path: Path
) -> None:
    exported = export_file(tmp_path / "export.yaml")
    base = await objects_of(server)
    where = f"127.0.0.1:{server.port}"
    proc = start_import(str(exported), "--server", where)
    await wait_objects(server, base + 100, proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = await finished(proc)
    assert (code, out) == (1, "")
    done = cut_off(err, "interrupted")
    assert 100 <= done < TOTAL

    controller, terminal = pty.openpty()
    try:
        again = start_import(str(exported), "--server", where, stderr=terminal)
        os.close(terminal)
        screen = await trio.to_thread.run_sync(read_all, controller)
        code, out, _ = await finished(again)
    finally:
        os.close(controller)
    assert code == 0
    assert summary(out)["created"] + summary(out)["unchanged"] == TOTAL
    assert "importing" in screen
    assert f"{TOTAL}/{TOTAL}" in screen
    assert_each_once(await ours(server.address))


def read_all(fd: int) -> str:
    """What was written to the terminal until its last writer closed it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


async def test_a_failover_during_an_import_is_followed(tmp_path: Path) -> None:
    exported = export_file(tmp_path / "export.yaml")
    with pair_nodes(tmp_path, verbose="standard") as pair:
        first, second = pair.masters
        first.start()
        await first.wait_role("primary")
        second.start()
        await second.wait_role("backup")
        base = await objects_of(first)
        servers = f"127.0.0.1:{first.port},127.0.0.1:{second.port}"
        proc = start_import(str(exported), "--server", servers)
        await wait_objects(first, base + 150, proc)
        first.kill()
        async with open_management("127.0.0.1", second.mport or 0, SECRET) as m:
            await m.switch_to_primary(force=True)
        code, out, err = await finished(proc)
        assert (code, err) == (0, "")
        counts = summary(out)
        assert counts["updated"] == 0
        assert counts["created"] + counts["unchanged"] == TOTAL
        assert_each_once(await ours(second.address))
