"""``scs events [-f]`` and ``scs history`` read the supervisor's files from another shell.

Real processes on real files: ``scs events -f`` keeps following through a
logrotate move (the file renamed, a new one created) and a ``copytruncate``;
the refusals are one line with their exit codes.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

from scs.history import FailoverRecord
from scs.history_file import HistoryFile

from ..helpers.system import BIN, IDLE_PAIR

CONF = (
    """[scs]
state-dir = state
{extra}
"""
    + IDLE_PAIR
)


def _conf(tmp: Path, extra: str = "") -> Path:
    conf = tmp / "scs.conf"
    conf.write_text(CONF.format(extra=extra))
    conf.chmod(0o600)
    return conf


def _scs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "scs"), *args], capture_output=True, text=True, timeout=60)


class Follower:
    """``scs events -f``, its output lines gathered by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "scs"), "events", *args], stdout=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not printed; printed: {self.seen}"
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_events_prints_the_last_lines_then_follows_through_rotation(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    log = tmp_path / "state" / "scs.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    done = _scs("events", str(conf), "-n", "3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "line 7\nline 8\nline 9\n", "")
    follower = Follower("-f", "--file", str(conf), "-n", "1")
    try:
        follower.wait_for("line 9")
        with log.open("a") as out:
            out.write("after 1\n")
        follower.wait_for("after 1")
        log.rename(log.with_name("scs.log.1"))  # logrotate's move, then a new file
        log.write_text("rotated 1\n")
        follower.wait_for("rotated 1")
        # copytruncate: the same file cut to nothing, then written again (less than was
        # there: as tail -F, a cut is seen by the file being shorter than what was read)
        log.write_text("")
        with log.open("a") as out:
            out.write("cut\n")
        follower.wait_for("cut")
        assert follower.seen == ["line 9", "after 1", "rotated 1", "cut"]
    finally:
        follower.stop()


def test_events_refusals_are_one_line(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    done = _scs("events", "--file", str(conf))
    assert done.returncode == 1
    assert done.stderr == (
        f"scs: no event log at {tmp_path / 'state' / 'scs.log'} yet (has scs -f {conf} run here?)\n"
    )
    off = _conf(tmp_path, "log-file = false")
    done = _scs("events", str(off))
    assert (done.returncode, done.stderr) == (
        2,
        f"scs: {off}: [scs] log-file = false: no event log on disk\n",
    )


def test_history_shows_the_records_newest_last(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    done = _scs("history", "-f", str(conf))
    assert (done.returncode, done.stdout) == (
        0,
        f"no failover recorded in {tmp_path / 'state' / 'failovers.jsonl'}\n",
    )
    history = HistoryFile(tmp_path / "state" / "failovers.jsonl", 100)
    for n, pair in enumerate(["p", "q", "p"]):
        record = FailoverRecord(pair, "cs1", "died", "killed by SIGKILL", 1e9 + n)
        record.cause, record.new_primary, record.epoch, record.promote_ms = (
            "proof of death",
            "cs2",
            n + 2,
            11.0,
        )
        record.healthy_at, record.outcome = 1e9 + n + 1.5, "healthy"
        history.write(record)
    done = _scs("history", "-f", str(conf), "--json", "--pair", "p")
    assert done.returncode == 0
    assert [json.loads(line)["epoch"] for line in done.stdout.splitlines()] == [2, 4]
    done = _scs("history", "-f", str(conf), "-n", "1")
    assert done.returncode == 0, done.stderr
    row = [line for line in done.stdout.splitlines() if "cs1 -> cs2" in line]
    assert len(row) == 1, done.stdout
    assert "proof of death" in row[0]
    assert "+1.5 s" in row[0]
    assert "11 ms" in row[0]
    assert "healthy" in row[0]
