"""Who a server process is: the instance written into the lease and into its claim.

A lease holder is an Application *plus* a per-process instance, so a second
process of the same Application (other ports, other host) is never mistaken
for the first. The instance carries what an operator needs to find that
process (host, pid, ports) and what lets a process on the same host tell a
dead holder from a live one: the pid *and* its start time (``/proc/PID/stat``),
so a reused pid is not taken for the old process.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone
    (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[:1] == [b"Z"]:
        return None  # a zombie: dead, only not yet reaped by its parent
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Instance:
    """One running server process, as written in the database."""

    id: str
    host: str
    pid: int
    start: int | None
    port: int = 0
    management_port: int = 0

    @classmethod
    def this_process(cls, port: int = 0, management_port: int = 0) -> Instance:
        """The instance of the calling process."""
        pid = os.getpid()
        return cls(
            id=uuid.uuid4().hex,
            host=socket.gethostname(),
            pid=pid,
            start=_start_time(pid),
            port=port,
            management_port=management_port,
        )

    def to_json(self) -> str:
        """The form kept in the ``instance`` column."""
        return json.dumps(
            {
                "id": self.id,
                "host": self.host,
                "pid": self.pid,
                "start": self.start,
                "port": self.port,
                "management_port": self.management_port,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Instance | None:
        """Inverse of :meth:`to_json`; None for an empty or unreadable column."""
        try:
            value: Any = json.loads(text)
            return cls(
                id=str(value["id"]),
                host=str(value["host"]),
                pid=int(value["pid"]),
                start=None if value.get("start") is None else int(value["start"]),
                port=int(value.get("port", 0)),
                management_port=int(value.get("management_port", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        """``pid 1234 on host hostA (ports 2120/2121)``, for log lines and errors."""
        return (
            f"pid {self.pid} on host {self.host} "
            f"(ports {self.port or '?'}/{self.management_port or '?'})"
        )

    def known_dead(self) -> bool:
        """True only when this instance is provably gone: it ran on this host and its
        pid is gone or now belongs to a process started at another time. A process on
        another host is never known dead from here."""
        if self.host != socket.gethostname():
            return False
        now = _start_time(self.pid)
        return now is None or (self.start is not None and now != self.start)


def describe_instance(text: str) -> str:
    """The description of an ``instance`` column, or ``an unknown process``."""
    inst = Instance.from_json(text)
    return "an unknown process" if inst is None else inst.describe()


def instance_id(text: str) -> str:
    """The id in an ``instance`` column ('' when there is none)."""
    inst = Instance.from_json(text)
    return "" if inst is None else inst.id
