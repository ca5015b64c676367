"""The runs of the pair's benchmark (``bench/bench_pair.py``): what the clients see, timed.

:func:`pair` is the benchmarked file's three nodes (``tests/helpers/nodes.py``);
:func:`lag_in_process` and :func:`lag_polled` time replication,
:func:`switchover_runs` planned switchovers under a writer, and
:func:`proxy_runs` failovers behind a proxy. Every time is ``time.monotonic()``.
"""

from __future__ import annotations

import functools
import math
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.measure import log_stamps
from confserv.client.resilient import open_resilient_client
from confserv.client.session import ConfigClient, open_client
from confserv.store.base import Change
from confserv.wire.errors import (
    BackupModeError,
    ConnectionLostError,
    NoPrimaryError,
    OutcomeUnknownError,
    ReadOnlyError,
    RequestError,
)
from tests.helpers.nodes import Node, Pair, pair_nodes
from tests.helpers.system import PASSWORD

#: Writes before the measured ones of the replication runs.
LAG_WARMUP = 20
#: Longest wait for one write to reach the backup before it is counted missing.
LAG_TIMEOUT = 2.0
#: Writing before the switch, and the observation window after the promotion answer.
SWITCH_LEAD = 0.3
SWITCH_WINDOW = 1.0
#: Acknowledged writes after the promotion that end a run early.
SWITCH_ACKS_AFTER = 50
#: Longest time allowed for one redirect before the run fails.
REDIRECT_TIMEOUT = 15.0
#: The promotion comes a random 0 to this many seconds after the kill, so that it falls at
#: any phase of the proxy's retry cycle (two masters tried in turn, RETRY = 25 ms apart).
PROMOTE_DELAY_MAX = 0.1
REDIRECT_SEED = 20240
#: Writes through the proxy for its steady-state write latency.
PROXY_BASELINE_WRITES = 50
#: Event id of "Connection to {what} at {where} established".
CONNECTED_EVENT = 4503


@contextmanager
def pair() -> Iterator[Pair]:
    """The benchmarked file's three nodes (unstarted): ADDP off, lease 4 s renewed every 1 s."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-pair-") as tmp,
        pair_nodes(
            Path(tmp), lease_ttl=4.0, lease_renew=1.0, addp_timeout=None, verbose="standard"
        ) as nodes,
    ):
        yield nodes


@asynccontextmanager
async def in_process_server(conf: Path, section: str, log_path: Path) -> AsyncIterator[Any]:
    """Run master ``section`` of the file in this trio loop (``confserv.server.app.run_server``).

    Yields what ``run_server`` reports as started (``port``,
    ``management_port``, ``runtime``, ``driver``); cancelled on exit. The
    event log goes to ``log_path``.
    """
    from confserv.config.settings import load_server_settings
    from confserv.logs.eventlog import EventLog
    from confserv.server.app import run_server

    settings = load_server_settings(conf, section)
    with log_path.open("a", encoding="utf-8", buffering=1) as out:
        log = EventLog(section, out, verbose=settings.log.verbose)
        async with trio.open_nursery() as nursery:
            info = await nursery.start(
                lambda task_status: run_server(settings, log=log, task_status=task_status)
            )
            try:
                yield info
            finally:
                nursery.cancel_scope.cancel()


def admin_client(address: tuple[str, int], app: str) -> AbstractAsyncContextManager[ConfigClient]:
    """``open_client`` to one server as the administrator."""
    return open_client([address], app=app, user="default", password=PASSWORD)


async def wait_same_serial(node: Node, other: Node, timeout: float = 30.0) -> int:
    """Poll both nodes' ``status`` every 20 ms until their serials match; the serial."""
    deadline = trio.current_time() + timeout
    while True:
        mine, theirs = await node.status(), await other.status()
        if mine is not None and theirs is not None and mine["serial"] == theirs["serial"]:
            return int(mine["serial"])
        if trio.current_time() > deadline:
            raise RuntimeError(f"{node.section} did not catch up with {other.section}")
        await trio.sleep(0.02)


@dataclass
class LagRun:
    """Per write of benchmark 1: monotonic times sent, answered, applied (or seen)."""

    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    applied: list[float] = field(default_factory=list)
    missing: int = 0
    polls: list[int] = field(default_factory=list)
    poll_rtts: list[float] = field(default_factory=list)


async def lag_in_process(nodes: Pair, directory: Path, writes: int) -> LagRun:
    """Primary as a process, backup in this trio loop with ``apply`` timestamped."""
    primary: Node = nodes.first
    primary.start()
    await primary.wait_role("primary")
    run = LagRun()
    async with in_process_server(nodes.conf, "backup", directory / "backup-inproc.log") as info:
        rt = info["runtime"]
        service = rt.service
        applied_at: dict[int, float] = {}
        original = service.apply

        def timed_apply(change: Change) -> bool:
            done: bool = original(change)
            if done:
                applied_at[change.serial] = time.monotonic()
            return done

        # The follower calls rt.service.apply for every change it applies.
        service.apply = timed_apply
        with trio.fail_after(30):
            while rt.role != "backup":
                await rt.role_changed.wait()
        async with admin_client(primary.address, "bench-lag-writer") as c:
            for i in range(LAG_WARMUP + writes):
                sent = time.monotonic()
                answer = await c.create("DN", {"name": f"lag-{i}"})
                answered = time.monotonic()
                serial = int(answer["serial"])
                with trio.move_on_after(LAG_TIMEOUT):
                    await service.wait_serial(serial)
                if i < LAG_WARMUP:
                    continue
                if serial not in applied_at:
                    run.missing += 1
                    continue
                run.sent.append(sent)
                run.answered.append(answered)
                run.applied.append(applied_at[serial])
        service.apply = original
    return run


async def lag_polled(nodes: Pair, writes: int) -> LagRun:
    """Primary and backup as processes; the backup's ``serial`` polled on its management port."""
    primary: Node = nodes.first
    backup: Node = nodes.second
    backup.start()
    await backup.wait_role("backup")
    await wait_same_serial(backup, primary)
    run = LagRun()
    async with backup.manage() as m, admin_client(primary.address, "bench-lag-poll-writer") as c:
        for i in range(LAG_WARMUP + writes):
            sent = time.monotonic()
            answer = await c.create("DN", {"name": f"lag-poll-{i}"})
            answered = time.monotonic()
            serial = int(answer["serial"])
            polls, seen = 0, math.nan
            deadline = answered + LAG_TIMEOUT
            while time.monotonic() < deadline:
                asked = time.monotonic()
                status = await m.status()
                polls += 1
                now = time.monotonic()
                run.poll_rtts.append(now - asked)
                if int(status["serial"]) >= serial:
                    seen = now
                    break
            if i < LAG_WARMUP:
                continue
            if math.isnan(seen):
                run.missing += 1
                continue
            run.sent.append(sent)
            run.answered.append(answered)
            run.applied.append(seen)
            run.polls.append(polls)
    return run


@dataclass
class SwitchRun:
    """One planned switchover as the writer saw it."""

    direction: str
    acks: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    unknown: int = 0
    reopened: int = 0
    switch_sent: float = math.nan
    demoted: float = math.nan
    promoted: float = math.nan
    ended: float = math.nan

    @property
    def resumed(self) -> bool:
        """Whether a write was acknowledged after the promotion answer."""
        return any(t > self.promoted for t in self.acks)

    @property
    def longest_pause(self) -> float:
        """Largest gap between consecutive acknowledgements, seconds (trailing gap if stuck)."""
        gaps = [b - a for a, b in zip(self.acks, self.acks[1:], strict=False)]
        if not self.resumed and self.acks:
            gaps.append(self.ended - self.acks[-1])
        return max(gaps, default=math.nan)


async def _switch_writer(
    servers: list[tuple[str, int]], run: SwitchRun, prefix: str, *, reopen: bool
) -> None:
    """Create DNs as fast as possible through the resilient client until cancelled.

    With ``reopen`` a write refused with ``backup-mode`` makes the writer leave
    the resilient client and open a new one (a workaround: the client library
    does not move off a server that became backup).
    """
    n = 0
    while True:
        async with open_resilient_client(
            servers,
            app=f"bench-switch-{prefix}",
            user="default",
            password=PASSWORD,
            reconnect_timeout=0.01,
        ) as rc:
            while True:
                n += 1
                try:
                    await rc.create("DN", {"name": f"{prefix}-{n}"})
                    run.acks.append(time.monotonic())
                    run.names.append(f"{prefix}-{n}")
                except ConnectionLostError:
                    run.unknown += 1
                except RequestError as exc:
                    run.refused[exc.code] += 1
                    if reopen and isinstance(exc, BackupModeError):
                        break
        run.reopened += 1


async def switchover_runs(nodes: Pair, *, reopen: bool, runs: int, tag: str) -> list[SwitchRun]:
    """``runs`` planned switchovers under a continuous writer, alternating direction."""
    first: Node = nodes.first
    second: Node = nodes.second
    servers = [first.address, second.address]
    out: list[SwitchRun] = []
    for index in range(runs):
        old = await primary_node(nodes)
        new = second if old is first else first
        await new.wait_role("backup")
        await wait_same_serial(new, old)
        run = SwitchRun(f"{old.section} -> {new.section}")
        async with trio.open_nursery() as nursery, old.manage() as m_old, new.manage() as m_new:
            nursery.start_soon(
                functools.partial(_switch_writer, servers, run, f"{tag}{index}", reopen=reopen)
            )
            await trio.sleep(SWITCH_LEAD)
            run.switch_sent = time.monotonic()
            await m_old.switch_to_backup()
            run.demoted = time.monotonic()
            await m_new.switch_to_primary()
            run.promoted = time.monotonic()
            deadline = run.promoted + SWITCH_WINDOW
            while time.monotonic() < deadline:
                if sum(t > run.promoted for t in run.acks) >= SWITCH_ACKS_AFTER:
                    break
                await trio.sleep(0.005)
            run.ended = time.monotonic()
            nursery.cancel_scope.cancel()
        out.append(run)
    return out


async def check_acked(address: tuple[str, int], runs: list[SwitchRun]) -> str:
    """Whether every acknowledged create of ``runs`` is on the server at ``address``, as text."""
    async with admin_client(address, "bench-switch-check") as c:
        have = {d["name"] for d in await c.read("DN")}
    acked = {name for r in runs for name in r.names}
    lost = acked - have
    if lost:
        return f"{len(lost)} ACKNOWLEDGED CREATES MISSING on the primary afterwards"
    return f"all {len(acked):,} acknowledged creates found on the primary afterwards"


async def primary_node(nodes: Pair) -> Node:
    """The master node whose status says primary."""
    for node in nodes.masters:
        if (await node.status() or {}).get("role") == "primary":
            return node
    raise RuntimeError("no primary")


@dataclass
class RedirectRun:
    """One failover as the proxy's client saw it."""

    killed: str
    delay_ms: float
    promote_ms: float
    write_ms: float
    log_ms: float
    tries: int
    errors: Counter[str]


async def _redirect_write(pc: ConfigClient, name: str, epoch: int) -> tuple[int, Counter[str]]:
    """Create through the proxy until one succeeds at ``epoch`` or later; (tries, errors)."""
    errors: Counter[str] = Counter()
    tries = 0
    with trio.fail_after(REDIRECT_TIMEOUT):
        while True:
            tries += 1
            try:
                answer = await pc.create("DN", {"name": f"{name}-{tries}"})
            except (NoPrimaryError, OutcomeUnknownError, BackupModeError, ReadOnlyError) as exc:
                errors[exc.code] += 1
                continue
            if int(answer["epoch"]) >= epoch:
                return tries, errors
            errors["old-epoch"] += 1


async def proxy_runs(nodes: Pair, runs: int) -> tuple[list[RedirectRun], list[float]]:
    """``runs`` SIGKILL + forced promotion failovers with a proxy in front; baseline too."""
    first: Node = nodes.first
    second: Node = nodes.second
    proxy: Node = nodes.proxy
    first.start()
    await first.wait_role("primary")
    second.start()
    await second.wait_role("backup")
    proxy.start()
    await proxy.wait_role("proxy")
    out: list[RedirectRun] = []
    baseline: list[float] = []
    rng = random.Random(REDIRECT_SEED)
    async with admin_client(proxy.address, "bench-proxy-writer") as pc:
        for i in range(PROXY_BASELINE_WRITES):
            sent = time.monotonic()
            await pc.create("DN", {"name": f"proxy-base-{i}"})
            baseline.append(time.monotonic() - sent)
        primary, backup = first, second
        for index in range(runs):
            await wait_same_serial(backup, primary)
            delay = rng.uniform(0.0, PROMOTE_DELAY_MAX)
            async with backup.manage() as m:
                killed_wall = time.time()
                primary.kill()
                await trio.sleep(delay)
                asked = time.monotonic()
                answer = await m.switch_to_primary(force=True)
                promoted = time.monotonic()
                promoted_wall = time.time()
            tries, errors = await _redirect_write(pc, f"redirect-{index}", int(answer["epoch"]))
            written = time.monotonic()
            where = f"127.0.0.1:{backup.mport}"
            stamps = log_stamps(
                "\n".join(
                    line for line in proxy.log_text().splitlines() if f" at {where} " in line
                ),
                CONNECTED_EVENT,
                killed_wall,
            )
            followed = [s for s in stamps if s >= killed_wall - 0.002]
            out.append(
                RedirectRun(
                    killed=primary.section,
                    delay_ms=delay * 1000,
                    promote_ms=(promoted - asked) * 1000,
                    write_ms=(written - promoted) * 1000,
                    log_ms=(followed[0] - promoted_wall) * 1000 if followed else math.nan,
                    tries=tries,
                    errors=errors,
                )
            )
            primary.start()  # comes back as backup: the new primary holds a valid lease
            await primary.wait_role("backup")
            primary, backup = backup, primary
    return out, baseline
