"""Bounded fuzz of the three ports of a real pair under ``scs -f`` (issue 12).

Ten thousand cases (``tests/fuzz``: random bytes, broken frames, mutated
requests before and after authentication on every port, near-miss ``auth``
answers, and hypothesis-drawn frames and requests) on the primary's client and management ports and
the supervisor's control port, over real loopback TCP. Between batches, and
at the end, the good client must still log in, write and read (client port)
and authenticate (management, control), every process must be the one that
started, and no log may hold a traceback or an unescaped control character.
``make fuzz`` is the long run (``python -m tests.fuzz``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import trio

from tests.fuzz import frames, shapes, strategies
from tests.fuzz.__main__ import raise_open_files
from tests.fuzz.checks import start_system
from tests.fuzz.report import latency_ms, print_report
from tests.fuzz.runner import Plan, run
from tests.fuzz.targets import Port, Tally, send_case

pytestmark = pytest.mark.integration

CASES = 10_000
#: Generous for a loaded 2-core machine; the long run reports the real figures.
MAX_LATENCY_MS = 1000.0


async def test_a_few_thousand_fuzz_cases_leave_every_port_answering(tmp_path: Path) -> None:
    raise_open_files()
    system = await start_system(tmp_path)
    try:
        rows = await system.status()
        primary = next(s for s, r in rows.items() if r["role"] == "primary")
        plan = Plan(cases=CASES, seed=12, minutes=0.5, fresh_share=0.3, check_every=0.25, pool=60)
        report = await run(system, primary, plan)
        after = await system.status()
    finally:
        system.stop()
    from rich.console import Console

    print_report(report, Console(file=sys.__stderr__, width=170))
    assert report.findings == []
    assert not report.timed_out
    assert report.cases == CASES
    for (port, gen), tally in report.tallies.items():
        assert tally.cases > 0, (port, gen)
    # Each port saw both kinds of refusal: a protocol error closing the connection,
    # and the port's own answer (not registered, or authentication failed).
    for port, refusal in (
        ("client", "not-registered"),
        ("management", "auth-failed"),
        ("control", "auth-failed"),
    ):
        seen = Tally()
        for (p, _), tally in report.tallies.items():
            if p == port:
                seen.add(tally)
        assert seen.answers["close: protocol error"] > 0, port
        assert seen.answers[refusal] > 0, port
    assert report.tallies[("client", "session")].answers["ok"] > 0
    for port in ("management", "control"):  # authenticated: read, or refused as bad-request
        authed = report.tallies[(port, "authed")].answers
        assert authed["ok"] > 0, port
        assert authed["bad-request"] > 0, port
    assert report.probe.rounds >= 2
    for port, values in report.probe.latencies.items():
        assert values, port
        assert latency_ms(values)[2] < MAX_LATENCY_MS, (port, sorted(values)[-3:])
    for name, kib in report.watch.rss_last.items():
        assert kib - report.watch.rss_start[name] < 64 * 1024, name
    assert {s: r["pid"] for s, r in after.items()} == {s: r["pid"] for s, r in rows.items()}


def test_the_fast_generator_is_seeded() -> None:
    def draw(seed: int) -> list[bytes]:
        rng = random.Random(seed)
        mut = frames.Mutator(rng)
        return [
            frames.frame_case(rng, mut, lambda: mut.request(shapes.CLIENT_SHAPES)).data
            for _ in range(50)
        ] + [frames.raw_case(rng).data for _ in range(50)]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_a_session_batch_holds_nothing_that_ends_the_connection() -> None:
    """The non-fatal mutator's requests all decode within the depth and frame limits."""
    from addp import FrameDecoder, decode_payload

    mut = frames.Mutator(random.Random(3), fatal=False)
    decoder = FrameDecoder()
    data = b"".join(frames.message_frame(mut.request(shapes.CLIENT_SHAPES)) for _ in range(3000))
    decoded = [decode_payload(payload) for _, payload in decoder.feed(data)]
    assert len(decoded) == 3000


def test_hypothesis_pools_are_drawn_per_seed() -> None:
    pool = strategies.sample(strategies.request(shapes.MANAGEMENT_SHAPES), 30, seed=4)
    assert len(pool) == 30
    assert pool == strategies.sample(strategies.request(shapes.MANAGEMENT_SHAPES), 30, seed=4)


async def test_a_case_on_a_closed_port_is_counted_not_raised() -> None:
    from tests.helpers.system import free_port

    tally = Tally()
    port = Port("client", "127.0.0.1", free_port(), shapes.CLIENT_SHAPES)
    with trio.fail_after(5):
        await send_case(port, frames.raw_case(random.Random(1)), tally)
    assert tally.cases == 1
    assert tally.answers["connect refused"] == 1


def test_the_watch_finds_tracebacks_and_unescaped_characters(tmp_path: Path) -> None:
    """The fuzz's 'tracebacks found: 0' means something: the scan sees each kind."""
    import os

    from tests.fuzz.checks import Watch

    log = tmp_path / "x.log"
    log.write_bytes(b"old line with \x1b before the watch starts\n")
    watch = Watch({"me": os.getpid()}, [log])
    with log.open("ab") as f:
        f.write(b"18:00:00.000 Std 20110 fine, escaped: '\\x1b[31m' and '\\u2028'\n")
        f.write(b"Traceback (most recent call last):\n")
        f.write(b"a raw escape \x1b[31m\n")
        f.write("a raw line separator \u2028 and NEL \x85\n".encode())
        f.write(b"a line not finished yet \x1b")
    watch.check()
    assert len(watch.tracebacks) == 1
    assert len(watch.control_lines) == 2
    assert watch.problems == []
    assert watch.rss_last["me"] > 0
