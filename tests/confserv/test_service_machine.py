"""The service's write path as a state machine (hypothesis), on a real SQLite store.

Invariants (docs/design.md): no acknowledged write is lost (memory equals the
database after every step), a refused write leaves no trace, serials count the
acknowledged writes, dbids are never reused, and once another server has taken
the lease this one can commit nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from confserv.core.service import ConfigService
from confserv.store.sqlite import SqliteStore
from confserv.wire.errors import FencedError, ReadOnlyError, RequestError
from tests.confserv.test_store import holder

T = TypeVar("T")
NAMES = st.sampled_from(["a", "b", "c", "d"])
TYPES = st.sampled_from(["Host", "Switch", "DN", "Application"])


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return trio.run(fn)


class ServiceMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.store = SqliteStore(":memory:")
        self.store._connect()

        async def boot() -> ConfigService:
            await self.store.create_schema()
            lease = await self.store.acquire_lease(holder("me"), 60, force=False)
            svc = ConfigService(self.store)
            await svc.reload()
            svc.epoch, svc.writable = lease.epoch, True
            return svc

        self.svc = run(boot)
        self.acked = 0
        self.max_dbid: dict[str, int] = {}
        self.deposed = False

    def _write(self, fn: Callable[[], Awaitable[Any]]) -> None:
        before = self.svc.last_serial
        try:
            change = run(fn)
        except (FencedError, ReadOnlyError):
            assert self.deposed
            assert self.svc.last_serial == before
            return
        except RequestError:
            assert self.svc.last_serial == before
            return
        assert not self.deposed, "a deposed server committed a write"
        self.acked += 1
        assert change.serial == before + 1
        if change.op == "add":
            assert change.dbid > self.max_dbid.get(change.type, 0), "dbid reused"
            self.max_dbid[change.type] = change.dbid

    def _pick(self, type_name: str, index: int) -> int:
        dbids = sorted(o["dbid"] for o in self.svc.read(type_name))
        return dbids[index % len(dbids)] if dbids else 999

    @rule(type_name=TYPES, name=NAMES, ref=st.integers(0, 5))
    def create(self, type_name: str, name: str, ref: int) -> None:
        obj: dict[str, Any] = {"name": name}
        if type_name == "DN":
            obj["switch_dbid"] = self._pick("Switch", ref)
        if type_name == "Application":
            obj["host_dbid"] = self._pick("Host", ref)
        self._write(lambda: self.svc.create(type_name, obj))

    @rule(type_name=TYPES, index=st.integers(0, 5), name=NAMES, port=st.integers(1, 9))
    def update(self, type_name: str, index: int, name: str, port: int) -> None:
        delta: dict[str, Any] = {"name": name}
        if type_name == "Application":
            delta["port"] = port
        options = {"s": {"k": str(port) if port % 3 else None}}
        dbid = self._pick(type_name, index)
        self._write(lambda: self.svc.update(type_name, dbid, delta, options))

    @rule(type_name=TYPES, index=st.integers(0, 5))
    def delete(self, type_name: str, index: int) -> None:
        dbid = self._pick(type_name, index)
        self._write(lambda: self.svc.delete(type_name, dbid))

    @rule()
    def another_server_takes_the_lease(self) -> None:
        run(lambda: self.store.acquire_lease(holder("other"), 60, force=True))
        self.deposed = True

    @invariant()
    def memory_equals_the_database(self) -> None:
        if not hasattr(self, "svc"):
            return
        snapshot = run(self.store.load)
        stored = {(o["type"], o["dbid"]): o for o in snapshot.objects}
        memory = {(o["type"], o["dbid"]): o for o in self.svc.all_objects()}
        assert stored == memory
        assert snapshot.last_serial == self.svc.last_serial == self.acked
        for type_name in ("Host", "Switch", "DN", "Application"):
            names = [o["name"] for o in self.svc.read(type_name)]
            assert len(names) == len(set(names))

    def teardown(self) -> None:
        if hasattr(self, "store"):
            run(self.store.aclose)


ServiceMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25)
TestServiceMachine = ServiceMachine.TestCase
