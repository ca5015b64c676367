"""The event log through stock :mod:`logging` handlers: files, rotation, reopen, JSON, syslog.

In-process for the handlers (a real file, a real datagram socket for
syslog) and one real ``confserv`` process: logrotate's move and a
``kill -HUP`` give a new file with the next lines, the server running on.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from confserv.config.settings import ConfigError, load_server_settings
from confserv.logs.catalog import Level, LogEvent
from confserv.logs.eventlog import EventLog
from confserv.logs.handlers import file_handler, parse_stamp, syslog_handler

from ..helpers.nodes import Node
from ..helpers.system import SECRET, cfgctl_init, free_port

EVENT = LogEvent(29999, Level.STD, "Peer said {text}")
ALARM = LogEvent(29998, Level.ALR, "Alarm {n}")
_DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} Std 29999 Peer said ")


def test_text_lines_carry_the_date_and_escape_what_a_peer_sent() -> None:
    out = io.StringIO()
    log = EventLog("t", out)
    before = time.time()
    log.emit(EVENT, text="evil\n20004 Std forged line\x1b[2J")
    [line] = out.getvalue().splitlines()
    assert _DATED.match(line), line
    assert line.endswith(r"Peer said evil\n20004 Std forged line\x1b[2J")
    assert before - 0.002 <= parse_stamp(line[:23]) <= time.time() + 0.002


def test_json_lines_hold_the_event_and_its_fields() -> None:
    out = io.StringIO()
    log = EventLog("t", out, json_lines=True)
    log.emit(EVENT, text="a\x00b")
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {k: record[k] for k in ("app", "level", "id", "msg", "text")} == {
        "app": "t",
        "level": "Std",
        "id": 29999,
        "msg": r"Peer said a\x00b",
        "text": r"a\x00b",
    }
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$", record["date"])


def test_a_file_rotates_at_its_segment_keeping_expire_files(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "cs.log"
    log = EventLog("t", stream=False)
    log.add_handler(file_handler(path, segment=64 << 10, expire=2))
    for n in range(3000):  # ~60 bytes a line: ~180 KB, three segments and more
        log.emit(EVENT, text=f"line {n:05d}")
    log.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["cs.log", "cs.log.1", "cs.log.2"]
    assert all(p.stat().st_size <= 64 << 10 for p in path.parent.iterdir())
    assert path.read_text().splitlines()[-1].endswith("line 02999")


def test_a_file_moved_away_is_reopened_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "cs.log"
    log = EventLog("t", stream=False)
    log.add_handler(file_handler(path))
    log.emit(EVENT, text="before")
    path.rename(tmp_path / "cs.log.1")  # logrotate, without copytruncate or a signal
    log.emit(EVENT, text="after")
    log.close()
    assert path.read_text().endswith("Peer said after\n")
    assert (tmp_path / "cs.log.1").read_text().endswith("Peer said before\n")


def test_syslog_gets_the_line_with_the_level_as_priority(tmp_path: Path) -> None:
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(5)
        log = EventLog("cs1", stream=False)
        log.add_handler(syslog_handler(address))
        log.emit(ALARM, n=7)
        log.emit(EVENT, text="x")
        alarm, standard = server.recv(4096), server.recv(4096)
        log.close()
    # facility daemon (3): err is 3*8+3 = 27, info 3*8+6 = 30
    assert alarm == b"<27>cs1: Alr 29998 Alarm 7\x00"
    assert standard == b"<30>cs1: Std 29999 Peer said x\x00"


def test_a_log_that_cannot_be_written_says_so_once(capfd: pytest.CaptureFixture[str]) -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    log = EventLog("cs1", stream=False)
    log.add_handler(logging.StreamHandler(Full()))
    for n in range(3):
        log.emit(EVENT, text=str(n))
    err = capfd.readouterr().err
    assert err == (
        "cs1: cannot write the log to StreamHandler: [Errno 28] No space left on device "
        "(lines are lost until it can)\n"
    )


def test_log_options_are_checked(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(
        "[confserv]\nport = 1\nserver = db\n[log]\nsegment = 10 hr\n"
        "[db]\ndbengine = sqlite\ndbname = x.sqlite\n"
    )
    with pytest.raises(ConfigError, match=r"\[log\] segment: '10 hr' is not a size"):
        load_server_settings(conf, "confserv")


def test_sighup_reopens_the_file_and_the_server_runs_on(tmp_path: Path) -> None:
    port, mport = free_port(), free_port()
    conf = tmp_path / "confserv.conf"
    conf.write_text(
        f"[confserv]\nport = {port}\nmanagement-port = {mport}\n"
        f"management-secret = {SECRET}\nserver = db\n"
        f"[backup]\nport = {free_port()}\nmanagement-port = {free_port()}\n"
        f"management-secret = {SECRET}\nserver = db\n"
        "[log]\nverbose = standard\nall = events.log\nformat = json\n"
        "[db]\ndbengine = sqlite\ndbname = cfg.sqlite\n"
    )
    conf.chmod(0o600)
    cfgctl_init(conf)
    node = Node(conf, "confserv", port, mport, tmp_path / "stdout.log")
    path = tmp_path / "events.log"
    node.start()
    try:
        _wait_for_id(path, 20002, node)
        path.rename(tmp_path / "events.log.1")
        os.kill(node.pid, signal.SIGHUP)
        [reopened] = _wait_for_id(path, 20006, node)
        assert reopened["msg"] == "SIGHUP: 1 log files reopened"
        assert node.alive
        assert 20002 in _ids(tmp_path / "events.log.1")  # the lines before the move
    finally:
        node.stop()
    assert 20004 in _ids(path)  # the stop is written to the new file
    assert node.log_text() == ""  # nothing on stderr: no traceback, no warning


def _ids(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def _wait_for_id(path: Path, event_id: int, node: Node) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node.check_alive()
        if path.exists():
            found = [json.loads(line) for line in path.read_text().splitlines()]
            hits = [r for r in found if r["id"] == event_id]
            if hits:
                return hits
        time.sleep(0.02)
    raise AssertionError(f"event {event_id} not in {path}")
