"""The agent's records on disk: what it started, and how each process ended.

One directory per agent (``state-dir``). For each process name the shim
(:mod:`lca.shim`) writes ``NAME.json``: the shim's and the command's pids and
their start times (clock ticks since boot, from ``/proc/PID/stat``), so that a
pid reused by another process is never taken for ours. When the command ends,
the shim writes ``NAME.PID.exit`` (one line: "exit code 1", "killed by
SIGKILL"). The agent removes both once the supervisor has been told of the exit.
Files are written whole (temporary file, then rename) and are mode 0600.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class RecordError(Exception):
    """A record file cannot be read or is not a record (named in the message)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One process the agent started, through its shim."""

    name: str
    shim_pid: int
    shim_started: int
    pid: int
    started: int
    argv: list[str]

    def to_json(self) -> str:
        """The record as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Record:
        """Parse a record; :class:`RecordError` naming ``where`` when it is not one."""
        try:
            data = json.loads(text)
            record = cls(
                name=str(data["name"]),
                shim_pid=int(data["shim_pid"]),
                shim_started=int(data["shim_started"]),
                pid=int(data["pid"]),
                started=int(data["started"]),
                argv=[str(a) for a in data["argv"]],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"{where}: not a process record ({exc})") from None
        return record


def record_path(directory: str | Path, name: str) -> Path:
    """Where the record of process ``name`` is."""
    return Path(directory) / f"{name}.json"


def exit_path(directory: str | Path, name: str, pid: int) -> Path:
    """Where the shim writes how process ``pid`` of ``name`` ended."""
    return Path(directory) / f"{name}.{pid}.exit"


def write_atomically(path: str | Path, text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` whole: a reader sees the old file or the new one.

    ``durable`` (the default) flushes it to disk first, for what must survive the
    host's crash (the newest supervisor epoch). The shim's records need not: they
    must outlive the agent, not the host, whose crash ends their processes too;
    and an exit record written without the flush reaches the supervisor sooner
    (the flush was half of an exit's report, ~20 ms).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def proc_start_time(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field
    22); :class:`ProcessLookupError` when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_same_process(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (not reused)."""
    try:
        return proc_start_time(pid) == started
    except ProcessLookupError:
        return False


def read_exit(directory: str | Path, name: str, pid: int) -> str | None:
    """How process ``pid`` of ``name`` ended, or None when the shim has not said."""
    try:
        return exit_path(directory, name, pid).read_text().strip() or None
    except FileNotFoundError:
        return None


def read_records(directory: str | Path) -> tuple[list[Record], list[str]]:
    """Every record in ``directory``, and one line for each file that is not a record."""
    records: list[Record] = []
    problems: list[str] = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            records.append(Record.from_json(path.read_text(), str(path)))
        except (OSError, RecordError) as exc:
            problems.append(str(exc))
    return records, problems


def forget(directory: str | Path, record: Record) -> None:
    """Remove the record and exit files of ``record`` (its exit has been delivered)."""
    for path in (
        exit_path(directory, record.name, record.pid),
        record_path(directory, record.name),
    ):
        try:
            if path.suffix == ".json":
                current = Record.from_json(path.read_text(), str(path))
                if current.pid != record.pid:
                    continue  # a newer start of the same name: keep it
            path.unlink()
        except (FileNotFoundError, RecordError):
            pass
