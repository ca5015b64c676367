"""The fuzz loop: cases on the three ports, checks while it runs, one :class:`Report`.

:func:`run` spreads ``cases`` over the generators: ``fresh_share`` of them
are fresh-connection cases (a third per port: ``random`` bytes, ``frames``
broken around requests, ``requests`` before authentication, ``auth`` answers
near the right one on the management and control ports, and ``hypothesis``
frames drawn by the strategies); the rest go to authenticated sessions, many
per connection, pipelined in batches: 60 % to registered sessions on the
client port (``session``: the fast mutator's requests; 10 % ``session-hyp``:
a pool of hypothesis-drawn requests), and 15 % each to ``authed`` sessions
on the management and control ports (the reading operations with any
arguments, the acting ones with an argument of a wrong kind, so that the
pair is never switched or stopped by the fuzz). While it runs, every
``check_every`` seconds the good client (:class:`~tests.fuzz.checks.Probe`)
is timed on each port and the processes
and logs are checked (:class:`~tests.fuzz.checks.Watch`). It stops after the
cases or after ``minutes``, whichever comes first.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import trio

from confserv.wire.auth import HandshakeError
from tests.helpers.system import CONTROL_SECRET, SECRET, System

from . import frames, shapes, strategies
from .checks import FUZZ_PASSWORD, FUZZ_USER, Probe, Watch
from .targets import Port, Session, Tally, send_case


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to fuzz and how."""

    cases: int
    seed: int = 0
    minutes: float = 30.0
    #: Share of the cases sent each on a connection of its own.
    fresh_share: float = 0.1
    #: Concurrent fresh-connection workers and registered sessions.
    workers: int = 4
    sessions: int = 2
    #: Requests per session batch.
    batch: int = 32
    check_every: float = 2.0
    #: Hypothesis examples drawn per pool.
    pool: int = 300


@dataclass
class Report:
    """What a run did and saw."""

    plan: Plan
    tallies: dict[tuple[str, str], Tally]
    probe: Probe
    watch: Watch
    elapsed: float = 0.0
    timed_out: bool = False
    checks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        """Cases sent in all."""
        return sum(t.cases for t in self.tallies.values())

    @property
    def findings(self) -> list[str]:
        """Everything that must not happen: empty for a clean run."""
        out = [f"traceback in the log: {t}" for t in self.watch.tracebacks]
        out += [f"control character in the log: {t}" for t in self.watch.control_lines]
        out += self.watch.problems
        out += [f"good client failed: {f}" for f in self.probe.failures]
        for (port, gen), t in self.tallies.items():
            if t.hangs:
                out.append(f"{port}/{gen}: {t.hangs} cases with no close or answer in time")
            if t.bad_output:
                out.append(f"{port}/{gen}: {t.bad_output} undecodable frames from the server")
        return out


CaseMaker = Callable[[], frames.Case]


def _fresh_makers(ports: dict[str, Port], plan: Plan) -> dict[tuple[str, str], CaseMaker]:
    makers: dict[tuple[str, str], CaseMaker] = {}
    for name, port in ports.items():
        rng = random.Random(f"{plan.seed}/{name}")
        mut = frames.Mutator(rng)
        table = port.table

        makers[(name, "random")] = partial(frames.raw_case, rng)
        makers[(name, "frames")] = partial(frames.frame_case, rng, mut, partial(mut.request, table))
        makers[(name, "requests")] = partial(frames.request_case, rng, mut, table)
        if "auth" in table:
            auth_only = {"auth": table["auth"]}
            makers[(name, "auth")] = partial(frames.request_case, rng, mut, auth_only)
        pool = strategies.sample(strategies.frames(table), plan.pool, plan.seed)
        makers[(name, "hypothesis")] = _cycle(pool)
    return makers


def _cycle(pool: list[bytes]) -> CaseMaker:
    it = iter(range(1 << 62))
    return lambda: frames.Case("hypothesis", pool[next(it) % len(pool)])


def _quotas(total: int, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    share, extra = divmod(total, len(keys)) if keys else (0, 0)
    return {k: share + (i < extra) for i, k in enumerate(keys)}


async def run(system: System, primary: str, plan: Plan) -> Report:
    """Fuzz ``system``'s primary (client and management ports) and its supervisor."""
    ports = {
        "client": Port("client", "127.0.0.1", system.ports[primary], shapes.CLIENT_SHAPES),
        "management": Port(
            "management", "127.0.0.1", system.management_ports[primary], shapes.MANAGEMENT_SHAPES
        ),
        "control": Port("control", "127.0.0.1", system.control_port, shapes.CONTROL_SHAPES),
    }
    rows = await system.status()
    pids = {f"server {s}": int(r["pid"]) for s, r in rows.items()}
    pids["scs"] = system.pid
    logs = [system.tmp / "confserv.log", system.tmp / "backup.log", system.logfile]
    report = Report(plan, {}, Probe(system, primary), Watch(pids, logs))
    makers = _fresh_makers(ports, plan)
    fresh_total = round(plan.cases * plan.fresh_share)
    quota = _quotas(fresh_total, list(makers))
    session_total = plan.cases - fresh_total
    session_rng = random.Random(f"{plan.seed}/session")
    session_mut = frames.Mutator(session_rng, fatal=False)
    session_pool = [
        frames.message_frame(v)
        for v in strategies.sample(strategies.request(shapes.CLIENT_SHAPES), plan.pool, plan.seed)
    ]
    # Of the session cases: 60 % fast-mutator requests and 10 % hypothesis-drawn ones on
    # the client port, 15 % each on authenticated management and control connections.
    session_quota = {
        ("client", "session"): session_total - 3 * (session_total // 20) * 2 - session_total // 10,
        ("client", "session-hyp"): session_total // 10,
        ("management", "authed"): 3 * (session_total // 20),
        ("control", "authed"): 3 * (session_total // 20),
    }
    for key in [*makers, *session_quota]:
        report.tallies[key] = Tally()

    def next_fresh() -> Iterator[tuple[tuple[str, str], frames.Case]]:
        left = dict(quota)
        while left:
            for key in list(left):
                if left[key] <= 0:
                    del left[key]
                    continue
                left[key] -= 1
                yield key, makers[key]()

    fresh = next_fresh()
    hyp_index = iter(range(1 << 62))

    def messages(key: tuple[str, str], n: int) -> list[bytes]:
        port, gen = key
        if gen == "session-hyp":
            return [session_pool[next(hyp_index) % len(session_pool)] for _ in range(n)]
        if gen == "authed":
            table = ports[port].table
            return [frames.message_frame(session_mut.authed_request(port, table)) for _ in range(n)]
        return [frames.message_frame(session_mut.request(shapes.CLIENT_SHAPES)) for _ in range(n)]

    def next_batch(keys: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], list[bytes]] | None:
        for key in sorted(keys, key=lambda k: -session_quota[k] * session_rng.random()):
            n = min(plan.batch, session_quota[key])
            if n > 0:
                session_quota[key] -= n
                return key, messages(key, n)
        return None

    async def fresh_worker() -> None:
        for key, case in fresh:
            await send_case(ports[key[0]], case, report.tallies[key])

    async def session_worker(keys: tuple[tuple[str, str], ...], session: Session) -> None:
        try:
            while (job := next_batch(keys)) is not None:
                key, batch = job
                try:
                    await session.batch(batch, report.tallies[key])
                except (OSError, ConnectionError, trio.TooSlowError, HandshakeError) as exc:
                    report.notes.append(f"{key[0]} session: {type(exc).__name__}: {exc}"[:200])
                    await session.aclose()
                    await trio.sleep(0.5)
        finally:
            await session.aclose()

    async def monitor(done: trio.Event) -> None:
        while not done.is_set():
            with trio.move_on_after(plan.check_every):
                await done.wait()
            await report.probe.once()
            report.watch.check()
            report.checks += 1

    started = time.monotonic()
    done = trio.Event()
    async with trio.open_nursery() as outer:
        outer.start_soon(monitor, done)
        with trio.move_on_after(plan.minutes * 60) as scope:
            async with trio.open_nursery() as nursery:
                for _ in range(plan.workers):
                    nursery.start_soon(fresh_worker)
                client_keys = (("client", "session"), ("client", "session-hyp"))
                for _ in range(plan.sessions):
                    session = Session(ports["client"], FUZZ_USER, FUZZ_PASSWORD)
                    nursery.start_soon(session_worker, client_keys, session)
                for name, secret in (("management", SECRET), ("control", CONTROL_SECRET)):
                    session = Session(ports[name], secret=secret)
                    nursery.start_soon(session_worker, ((name, "authed"),), session)
        done.set()
    report.timed_out = scope.cancelled_caught
    report.elapsed = time.monotonic() - started
    await trio.sleep(0.5)  # the last lines reach the logs
    report.watch.check()
    return report
