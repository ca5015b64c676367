"""The PairDriver's one owner task, on a fake store under trio's MockClock (no IO, no sleeps).

Only the task running :meth:`PairDriver.run` ever asks the role machine
anything; promote, demote and peer acks from other tasks are commands it
answers. Acknowledgements that arrive while the owner waits on the database
count at the time they arrived: they can keep the failsafe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from confserv.config.settings import DatabaseSettings
from confserv.core.runtime import Runtime
from confserv.core.service import ConfigService
from confserv.ha import pair
from confserv.ha.pair import PairDriver
from confserv.logs import events
from confserv.store.base import Holder, Lease
from confserv.store.instance import Instance
from confserv.wire.errors import FencedError, LeaseHeldError, PairStoppedError, UnavailableError

from .conftest import LogCapture, make_settings

TTL, RENEW = 2.0, 0.5


class FakeStore:
    """The lease operations a PairDriver calls, in memory, with the trio clock as the
    database clock; ``stall`` holds renewals until set, ``down`` makes them fail."""

    def __init__(self) -> None:
        self.epoch = 0
        self.holder = ""
        self.key = ""
        self.expires_at = 0.0
        self.address = ""
        self.takes = 0
        self.stall: trio.Event | None = None
        self.down = False

    def lease(self) -> Lease:
        now = trio.current_time()
        lease = Lease(self.epoch, self.holder, self.expires_at, now, self.address)
        return lease

    async def read_lease(self) -> Lease | None:
        return self.lease() if self.holder else None

    async def acquire_lease(
        self,
        holder: Holder,
        ttl: float,
        *,
        force: bool,
        address: str = "",
        over: int | None = None,
    ) -> Lease:
        await trio.sleep(0.01)
        now = trio.current_time()
        if self.holder and self.key != holder.key and self.expires_at > now and not force:
            raise LeaseHeldError("held", self.holder, self.epoch)
        self.takes += 1
        self.epoch += 1
        self.holder, self.key, self.address = holder.app, holder.key, address
        self.expires_at = now + ttl
        return self.lease()

    async def renew_lease(self, holder: Holder, epoch: int, ttl: float) -> Lease:
        sent = trio.current_time()
        if self.stall is not None:
            await self.stall.wait()
        if self.down:
            raise UnavailableError("the database is unreachable")
        if self.key != holder.key or self.epoch != epoch:
            raise FencedError("the lease moved on")
        self.expires_at = sent + ttl
        return self.lease()

    async def release_lease(self, holder: Holder, epoch: int) -> None:
        if self.key == holder.key and self.epoch == epoch:
            self.holder = self.key = ""

    async def renew_claim(self, holder: Holder, ttl: float) -> Lease:
        return self.lease()

    async def history_since(self, serial: int, limit: int) -> list[Any]:
        return []


class Pair:
    """A driver on a fake store; every machine call is checked to come from one task."""

    def __init__(self, tmp_path: Path, store: FakeStore | None = None) -> None:
        db = DatabaseSettings(section="db", engine="sqlite", dbname=str(tmp_path / "x"))
        self.settings = make_settings(db, lease_ttl=TTL, lease_renew=RENEW)
        self.store = store or FakeStore()
        self.log = LogCapture()
        service = ConfigService(self.store)  # type: ignore[arg-type]
        self.rt = Runtime(name="confserv", pair="p", service=service, log=self.log)
        holder = Holder("confserv", Instance.this_process())
        self.driver = PairDriver(self.rt, self.store, self.settings, "h:1:2", holder)  # type: ignore[arg-type]
        self.callers: set[trio.lowlevel.Task] = set()
        machine = self.driver.machine
        for name in ("start", "tick", "promote", "demote", "peer_ack", "lease_read",
                     "lease_taken", "lease_refused", "renewed", "renew_fenced",
                     "db_unreachable"):  # fmt: skip
            setattr(machine, name, self._watched(getattr(machine, name)))

    def _watched(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kw: Any) -> Any:
            self.callers.add(trio.lowlevel.current_task())
            return method(*args, **kw)

        return call

    def one_owner(self) -> bool:
        return len(self.callers) == 1


@pytest.fixture(autouse=True)
def no_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    """As backup the driver would connect to the primary: here it follows no one."""

    async def follow(*_: Any) -> None:
        await trio.sleep_forever()

    monkeypatch.setattr(pair, "follow_primary", follow)


async def test_concurrent_commands_are_answered_by_the_owner_and_take_the_lease_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, nursery: trio.Nursery
) -> None:
    store = FakeStore()
    store.holder, store.key, store.epoch, store.expires_at = "backup", "backup#x", 1, 1.0e9
    p = Pair(tmp_path, store)
    await nursery.start(p.driver.run)
    assert p.rt.role == "backup"
    store.expires_at = trio.current_time()  # the other server's lease ran out
    answers: list[str] = []

    async def promote() -> None:
        answers.append(str((await p.driver.promote(False))["role"]))

    async def ack() -> None:
        p.driver.peer_ack()  # from the management port's task, as app.py's hooks do

    async with trio.open_nursery() as callers:
        for _ in range(3):
            callers.start_soon(promote)
            callers.start_soon(ack)
    assert answers == ["primary"] * 3
    assert store.takes == 1  # one promotion takes the lease once
    await trio.sleep(10 * RENEW)  # renewals go on
    assert p.rt.role == "primary"
    assert store.expires_at > trio.current_time()
    await p.driver.demote()
    assert p.rt.role == "backup"
    assert store.holder == ""  # released
    assert p.one_owner()


async def test_a_promotion_refused_is_the_owners_answer(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, nursery: trio.Nursery
) -> None:
    store = FakeStore()
    store.holder, store.key, store.epoch, store.expires_at = "backup", "backup#x", 1, 1.0e9
    p = Pair(tmp_path, store)
    await nursery.start(p.driver.run)
    with pytest.raises(pair.PromotionRefusedError, match="'backup' holds a valid lease"):
        await p.driver.promote(False)
    assert p.rt.role == "backup"
    assert p.one_owner()


@pytest.mark.parametrize("acked", [True, False])
async def test_acks_that_arrive_during_a_stalled_renewal_keep_the_failsafe(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, nursery: trio.Nursery, acked: bool
) -> None:
    p = Pair(tmp_path)
    await nursery.start(p.driver.run)
    assert p.rt.role == "primary"
    t0 = trio.current_time()
    p.store.stall = trio.Event()
    p.store.down = True
    await trio.sleep_until(t0 + RENEW + 0.1)  # the renewal is under way, and hangs
    if acked:
        p.driver.peer_ack()  # the backup still follows this server
    await trio.sleep_until(t0 + TTL - 0.1)  # the renewal fails just before the lease may end
    p.store.stall.set()
    await trio.sleep(0.01)
    if acked:  # failsafe: no writes, but still primary
        assert events.WRITES_STOPPED.id in p.log.ids()
        assert p.rt.role == "primary"
        assert not p.rt.service.writable
    else:  # nobody vouches for it: self-fenced
        assert p.rt.role == "backup"
    assert p.one_owner()


async def test_a_renewal_that_never_answers_still_self_fences_before_the_lease_ends(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """A silent database (its host crashed, a partition): the renewal hangs for ever.
    The owner gives it up at the fence point, so the primary stops writing (and, with
    no backup vouching for it, steps down) before its lease may run out."""
    p = Pair(tmp_path)
    await nursery.start(p.driver.run)
    assert p.rt.role == "primary"
    p.store.stall = trio.Event()  # never set
    t0 = trio.current_time()
    await trio.sleep_until(t0 + TTL)  # the last renewal before t0 was at most RENEW ago
    assert not p.rt.service.writable
    assert p.rt.role == "backup"
    assert any("lease renewal unanswered" in text for _, text in p.log.events)
    assert p.one_owner()


async def test_commands_to_a_stopped_driver_are_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    p = Pair(tmp_path)
    p.store.holder, p.store.key, p.store.epoch, p.store.expires_at = "b", "b#x", 1, 1.0e9
    refused: list[BaseException] = []

    async def promote() -> None:
        try:
            await p.driver.promote(False)
        except PairStoppedError as exc:
            refused.append(exc)

    async with trio.open_nursery() as callers, trio.open_nursery() as server:
        await server.start(p.driver.run)
        p.store.acquire_lease = _hang  # type: ignore[method-assign]
        callers.start_soon(promote)  # carried out by the owner, which hangs in the take
        callers.start_soon(promote)  # waits its turn behind the first
        await trio.sleep(1)
        server.cancel_scope.cancel()  # the server stops meanwhile
    assert len(refused) == 2
    with pytest.raises(PairStoppedError):
        await p.driver.promote(False)
    p.driver.peer_ack()  # ignored, no error


async def _hang(*_: Any, **__: Any) -> Lease:
    await trio.sleep_forever()
    raise AssertionError("unreachable")
