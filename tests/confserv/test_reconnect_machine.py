"""The resilient client's reconnect policy (confserv.client.reconnect) as a state machine
(hypothesis), and the client that carries it out, under trio's MockClock (no IO).

Invariants:

- each server is tried ``attempts`` times in a row, ``timeout`` apart, before
  the next of the list; a lost connection moves on to the next after the one it
  was up on (which a backup's hint may have made another than the one tried) at once, unless
  the previous loss was less than ``timeout`` before: then no sooner than
  ``timeout`` after it (never a hot loop on servers that drop every session);
- no attempt starts before the wait after a failure is over;
- it gives up only with ``give_up_after`` set, on a failure at least that long
  into the outage, and then for good.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.client import resilient
from confserv.client.reconnect import GiveUp, ReconnectPolicy, ReconnectStateError, Wait
from confserv.client.resilient import open_resilient_client
from confserv.wire.errors import NoServerError

TIMEOUT = 0.5


class ReconnectRules(RuleBasedStateMachine):
    @initialize(
        servers=st.integers(1, 3),
        attempts=st.integers(1, 3),
        give_up=st.none() | st.floats(0.1, 3.0),
    )
    def start(self, servers: int, attempts: int, give_up: float | None) -> None:
        self.p = ReconnectPolicy(servers, timeout=TIMEOUT, attempts=attempts, give_up_after=give_up)
        self.servers, self.attempts, self.give_up = servers, attempts, give_up
        self.now = 0.0
        self.p.begin(self.now)
        self.outage_began = 0.0
        self.index, self.tries = 0, 0
        self.up = False
        self.gave_up = False
        self.not_before = 0.0
        self.last_loss: float | None = None

    @rule(dt=st.floats(0, 1))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(connects=st.booleans(), landed=st.none() | st.integers(0, 2))
    def an_attempt(self, connects: bool, landed: int | None) -> None:
        if self.gave_up or self.up:
            return
        if self.now < self.not_before:
            assert not self.p.may_try(self.now)
            return
        assert self.p.may_try(self.now)
        assert self.p.server == self.index % self.servers
        if connects:
            # landed: up on another server of the list (the one tried named its primary)
            self.p.connected(landed)
            if landed is not None and landed % self.servers != self.index % self.servers:
                self.index, self.tries = landed % self.servers, 0
            self.up = True
            return
        decision = self.p.failed(self.now)
        self.tries += 1
        if self.tries >= self.attempts:
            self.index, self.tries = self.index + 1, 0
        if self.give_up is not None and self.now >= self.outage_began + self.give_up:
            assert decision == GiveUp(self.give_up)
            self.gave_up = True
        else:
            assert decision == Wait(pytest.approx(self.now + TIMEOUT))
            self.not_before = self.now + TIMEOUT

    @rule()
    def the_connection_is_lost(self) -> None:
        if not self.up:
            with pytest.raises(ReconnectStateError):
                self.p.lost(self.now)
            return
        decision = self.p.lost(self.now)
        self.up = False
        self.index, self.tries = self.index + 1, 0
        self.outage_began = self.now
        if self.last_loss is not None and self.now < self.last_loss + TIMEOUT:
            self.not_before = self.last_loss = self.last_loss + TIMEOUT
            assert decision == Wait(pytest.approx(self.not_before))
        else:
            self.not_before = self.last_loss = self.now  # at once
            assert decision is None

    @invariant()
    def the_policy_agrees(self) -> None:
        assert self.p.server == self.index % self.servers
        assert self.p.given_up is self.gave_up
        if self.gave_up:
            assert not self.p.may_try(math.inf)
            assert self.p.next_deadline() is None


TestReconnectRules = ReconnectRules.TestCase
TestReconnectRules.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


class FakeSession:
    def __init__(self) -> None:
        self.closed = trio.Event()


class FakeClient:
    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.session = FakeSession()
        self.info: dict[str, object] = {}  # the register answer (no ticket here)


class FakeServers:
    """``open_client`` for the resilient client, with no IO: records each attempt."""

    def __init__(self, up: set[int]) -> None:
        self.up = up  # ports that accept
        self.attempts: list[tuple[int, float]] = []
        self.clients: list[FakeClient] = []

    @asynccontextmanager
    async def open_client(
        self, servers: list[tuple[str, int]], **_: object
    ) -> AsyncIterator[FakeClient]:
        (address,) = servers
        self.attempts.append((address[1], trio.current_time()))
        if address[1] not in self.up:
            raise NoServerError(f"{address[1]} refused")
        client = FakeClient(address)
        self.clients.append(client)
        yield client


SERVERS = [("127.0.0.1", 1), ("127.0.0.1", 2)]


async def test_the_client_gives_up_on_time_when_no_server_answers(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServers(up=set())
    monkeypatch.setattr(resilient, "open_client", fake.open_client)
    began = trio.current_time()
    with pytest.raises(ExceptionGroup) as failed:  # out of the client's nursery, as ever
        async with open_resilient_client(
            SERVERS[:1], app="t", user="u", password="p", reconnect_timeout=0.5, give_up_after=2.0
        ):
            pass
    assert failed.group_contains(NoServerError, match="gave up after 2 s: 1 refused")
    # attempts 0.5 s apart; the one 2 s into the outage gives up instead of waiting
    assert [round(t - began, 6) for _, t in fake.attempts] == [0.0, 0.5, 1.0, 1.5, 2.0]


async def test_a_lost_connection_moves_to_the_next_server_at_once(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServers(up={1, 2})
    monkeypatch.setattr(resilient, "open_client", fake.open_client)
    async with open_resilient_client(
        SERVERS, app="t", user="u", password="p", reconnect_timeout=5.0, reconnect_attempts=2
    ) as client:
        assert client.address == SERVERS[0]
        fake.up = {1}  # the second server is down when the first is lost
        t0 = trio.current_time()
        fake.clients[-1].session.closed.set()
        with trio.fail_after(60):
            while client.address != SERVERS[0] or client.connects < 2:
                await trio.sleep(0.01)
        # at once to server 2 (down), 5 s later server 2 again, then back to server 1
        assert [(port, round(t - t0, 2)) for port, t in fake.attempts[1:]] == [
            (2, 0.0),
            (2, 5.0),
            (1, 10.0),
        ]


async def test_a_loss_after_a_backups_hint_moves_on_from_the_server_it_was_up_on(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by make chaos (SQLite, a SIGSTOP of the primary, failover 3.7 s against
    2.0 s): the client tried the backup, which named its primary, and was up there;
    when the stopped primary was lost the client counted the *backup* as lost, moved
    on to the primary it had just lost and waited out connect_timeout on it."""
    fake = FakeServers(up={1, 2})
    seen: list[tuple[int, frozenset[tuple[str, int]]]] = []
    hinted = True

    @asynccontextmanager
    async def hinting(servers: list[tuple[str, int]], **kw: object) -> AsyncIterator[FakeClient]:
        nonlocal hinted
        suspects = kw.get("suspects", frozenset())
        assert isinstance(suspects, frozenset)
        seen.append((servers[0][1], suspects))
        if servers == SERVERS[:1] and hinted:  # a backup naming its primary, server 2
            hinted = False
            servers = SERVERS[1:]
        async with fake.open_client(servers, **kw) as client:
            yield client

    monkeypatch.setattr(resilient, "open_client", hinting)
    async with open_resilient_client(
        SERVERS, app="t", user="u", password="p", reconnect_timeout=5.0
    ) as client:
        assert client.address == SERVERS[1]  # up on the primary it was told of
        t0 = trio.current_time()
        fake.clients[-1].session.closed.set()  # the primary is lost
        with trio.fail_after(60):
            while client.connects < 2:
                await trio.sleep(0.01)
        assert client.address == SERVERS[0]  # the promoted backup, at once
        assert fake.attempts[-1] == (1, t0)
    assert seen == [(1, frozenset()), (1, frozenset({SERVERS[1]}))]


async def test_servers_that_drop_every_session_at_once_are_not_hammered(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both servers accept a session and end it at once: the client used to reconnect
    in a hot loop (thousands of attempts a second); now once per ``reconnect_timeout``."""
    fake = FakeServers(up={1, 2})

    @asynccontextmanager
    async def dropping(servers: list[tuple[str, int]], **kw: object) -> AsyncIterator[FakeClient]:
        # a hot loop never lets the mock clock move: stop it by count
        assert len(fake.attempts) < 50, "reconnecting in a hot loop"
        async with fake.open_client(servers, **kw) as client:
            client.session.closed.set()  # ends as soon as it is up
            yield client

    monkeypatch.setattr(resilient, "open_client", dropping)
    async with open_resilient_client(
        SERVERS, app="t", user="u", password="p", reconnect_timeout=0.5
    ):
        t0 = trio.current_time()
        await trio.sleep(3.0)
    times = [round(t - t0, 6) for _, t in fake.attempts]
    assert 5 <= len(times) <= 8, times  # one at once, then one per 0.5 s, on and on
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times[1:])), times
