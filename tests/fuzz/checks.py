"""The system under fuzz and what is checked between batches.

:func:`start_system` runs the pair under ``scs -f`` (``tests/helpers/system.py``,
no proxy). :class:`Probe` logs in, writes
and reads on the client port, and authenticates and asks ``status`` on the
management and control ports, timing each answer. :class:`Watch` checks that
the processes are the same ones and alive, reads their RSS, and scans the
logs as they grow for ``Traceback`` and for control characters (peer data
must be escaped).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from confserv.client.session import open_client, open_control, open_management
from tests.helpers.system import CONTROL_SECRET, PASSWORD, SECRET, System, healthy

#: The good client's user, and the fuzz session's: the system's ``default``. No fuzz
#: case names it, so the login back-off per user never falls on it.
GOOD_USER = FUZZ_USER = "default"
GOOD_PASSWORD = FUZZ_PASSWORD = PASSWORD
#: Bytes a log line must never hold: control characters other than tab and newline,
#: C1 controls (U+0080 to U+009F, NEL among them) and the Unicode line and paragraph
#: separators (U+2028, U+2029), which some readers take for a new line.
CONTROL_CHARS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


async def start_system(tmp: Path) -> System:
    """The pair under ``scs -f``, healthy."""
    system = System(tmp, proxy=False)
    system.start()
    try:
        await system.wait(healthy, timeout=60)
    except BaseException:
        system.stop()
        raise
    return system


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class Probe:
    """The good client: its answers' latencies per port (seconds), and its failures."""

    system: System
    primary: str
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"client": [], "management": [], "control": []}
    )
    failures: list[str] = field(default_factory=list)
    rounds: int = 0

    async def once(self) -> None:
        """One round on each port; a failure is recorded with what failed."""
        self.rounds += 1
        for port, step in (
            ("client", self._client),
            ("management", self._management),
            ("control", self._control),
        ):
            try:
                with trio.fail_after(10):
                    await step(self.latencies[port])
            except Exception as exc:  # every failure is a finding, recorded with its text
                self.failures.append(f"{port}: {type(exc).__name__}: {exc}"[:300])

    async def _client(self, out: list[float]) -> None:
        started = time.monotonic()
        async with open_client(
            [self.system.address(self.primary)], app="good", user=GOOD_USER, password=GOOD_PASSWORD
        ) as c:
            out.append(time.monotonic() - started)  # login
            me = await c.get("Person", GOOD_USER)
            assert me is not None
            started = time.monotonic()
            await c.update("Person", me["dbid"], options={"probe": {"n": str(self.rounds)}})
            out.append(time.monotonic() - started)  # write
            started = time.monotonic()
            back = await c.get("Person", GOOD_USER)
            out.append(time.monotonic() - started)  # read
            assert back is not None
            assert back["options"]["probe"]["n"] == str(self.rounds)

    async def _management(self, out: list[float]) -> None:
        started = time.monotonic()
        port = self.system.management_ports[self.primary]
        async with open_management("127.0.0.1", port, SECRET, expect=self.primary) as m:
            status = await m.status()
        out.append(time.monotonic() - started)
        assert status["role"] == "primary", status

    async def _control(self, out: list[float]) -> None:
        started = time.monotonic()
        async with open_control(self.system.control_port, CONTROL_SECRET) as m:
            status = await m.status()
        out.append(time.monotonic() - started)
        rows = {r["section"]: r for r in status["servers"]}
        assert rows[self.primary]["role"] == "primary", rows


@dataclass
class Watch:
    """The processes (same pids, alive, RSS) and their logs (tracebacks, control characters)."""

    pids: dict[str, int]
    logs: list[Path]
    rss_start: dict[str, int] = field(default_factory=dict)
    rss_last: dict[str, int] = field(default_factory=dict)
    rss_peak: dict[str, int] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)
    control_lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    log_bytes: int = 0
    _offsets: dict[Path, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rss_start = {name: rss_kib(pid) for name, pid in self.pids.items()}
        self.rss_peak = dict(self.rss_start)
        for path in self.logs:
            self._offsets[path] = path.stat().st_size if path.exists() else 0

    def check(self) -> None:
        """Read the processes and the new log bytes; note anything wrong."""
        for name, pid in self.pids.items():
            kib = rss_kib(pid)
            if kib == 0:
                self.problems.append(f"{name} (pid {pid}) is gone")
            self.rss_last[name] = kib
            self.rss_peak[name] = max(self.rss_peak.get(name, 0), kib)
        for path in self.logs:
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(self._offsets[path])
                data = f.read()
            cut = data.rfind(b"\n") + 1  # whole lines only; the rest is read next time
            data = data[:cut]
            self._offsets[path] += cut
            self.log_bytes += cut
            for line in data.splitlines():
                if b"Traceback" in line:
                    self.tracebacks.append(f"{path.name}: {line[:200]!r}")
                if CONTROL_CHARS.search(line):
                    self.control_lines.append(f"{path.name}: {line[:200]!r}")
