"""Guessing the management or control secret is slowed per source, never locked out.

Issue 12's finding: 1,350-1,650 secret guesses a second on one connection
each. Now, past a threshold of wrong proofs from one source, each wrong proof
is answered only after a delay that doubles, while a right proof from the same
source is answered at once (the supervisor shares the guesser's address on one
host). Under trio's MockClock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from addp.transport import Link
from confserv.core.auth_backoff import Backoff
from confserv.core.secret_tarpit import TARPIT_POLICY, SecretTarpit
from confserv.server.management import ManagementSession
from confserv.wire.auth import ClientHandshake, Purpose
from scs.control import ControlSession
from tests.security.test_mutual_auth import (
    CONTROL_SECRET,
    SECRET,
    Capture,
    fake_supervisor,
    memory_link_to,
    runtime,
)


async def test_the_first_wrong_proofs_are_answered_at_once_then_later_and_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    emitted: list[int] = []
    tarpit = SecretTarpit("management secret", lambda event, **_: emitted.append(event.id))
    delays = []
    for _ in range(8):
        start = trio.current_time()
        await tarpit.wrong_proof("127.0.0.1:40000")
        delays.append(round(trio.current_time() - start, 3))
    assert delays == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert emitted == [20194]  # one line when the source starts being slowed
    # Another source is not slowed by the first one's guesses.
    assert tarpit.delay_for("10.1.1.1:5") == 0.0


@given(st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=60))
def test_the_delay_never_exceeds_the_policy_and_counts_nothing(gaps: list[float]) -> None:
    backoff = Backoff(TARPIT_POLICY)
    now = 0.0
    for gap in gaps:
        now += gap
        backoff.failed("source x", now)
        delay = backoff.delay("source x", now)
        assert 0.0 <= delay <= TARPIT_POLICY.max_delay + 1e-9
        assert backoff.delay("source x", now) == delay  # asking changes nothing


async def _attempt(
    session: Callable[[Link], Any], secret: str, nursery: trio.Nursery
) -> tuple[bool, float]:
    """One connection: authenticate with ``secret``; (accepted, seconds to the answer)."""
    async with memory_link_to(nursery, session) as link:
        client = ClientHandshake((Purpose.MANAGEMENT, Purpose.CONTROL), secret)
        challenge = await link.receive()
        start = trio.current_time()
        await link.send({"op": "auth", "id": 1, **client.challenge(challenge)})
        answer = await link.receive()
        return bool(answer["ok"]), trio.current_time() - start


@pytest.mark.parametrize("port", ["management", "control"])
async def test_a_guesser_is_slowed_and_the_right_secret_is_never_held_back(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, port: str
) -> None:
    log = Capture()
    if port == "management":
        rt = runtime("X", log)
        right = SECRET

        async def session(link: Link) -> None:
            await ManagementSession(link, rt, SECRET, auth_timeout=60.0).run()

    else:
        sup = fake_supervisor(log)
        right = CONTROL_SECRET
        tarpit = SecretTarpit("control secret", log.emit)

        async def session(link: Link) -> None:
            await ControlSession(link, sup, CONTROL_SECRET, auth_timeout=60.0, tarpit=tarpit).run()

    waits = []
    for _ in range(7):
        accepted, waited = await _attempt(session, "a-guess", nursery)
        assert not accepted
        waits.append(round(waited, 3))
    assert waits == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0]
    # The same source (every memory link is "peer") with the right secret, mid-block:
    accepted, waited = await _attempt(session, right, nursery)
    assert accepted
    assert waited == 0.0
    assert log.ids.count(20194) == 1
