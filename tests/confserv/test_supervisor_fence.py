"""The supervisor fence (confserv.core.supervisor_fence) and its use on the
management port (issue 14: a command from an older supervisor epoch than the
newest seen is refused with ``stale-supervisor`` and does nothing).

The rule is tested alone (examples and a hypothesis property), then through a
real :class:`~confserv.server.management.ManagementSession` on 127.0.0.1 over a
dummy runtime whose pair driver and proxy redirect only record their calls.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from addp import AddpOptions
from addp.transport import Link, serve
from confserv.client.session import open_management
from confserv.core.runtime import Runtime
from confserv.core.supervisor_fence import SupervisorFence
from confserv.server.management import ManagementSession
from confserv.wire.errors import (
    ERRORS_BY_CODE,
    BadRequestError,
    RequestError,
    StaleSupervisorError,
)
from tests.security.test_mutual_auth import Capture, runtime

SECRET = "management-secret-of-the-pair"

# --- the rule alone -------------------------------------------------------------


def test_newer_and_equal_epochs_are_admitted_an_older_one_is_refused_and_changes_nothing() -> None:
    fence = SupervisorFence()
    fence.admit(5)
    assert fence.newest == 5
    with pytest.raises(StaleSupervisorError) as refused:
        fence.admit(4)
    assert str(refused.value) == (
        "supervisor epoch 4 is older than epoch 5, already seen here: a newer supervisor is active"
    )
    assert (refused.value.epoch, refused.value.newest, refused.value.code) == (
        4,
        5,
        "stale-supervisor",
    )
    assert fence.newest == 5
    fence.admit(5)  # the active supervisor's next command
    fence.admit(6)  # a newer supervisor took over
    assert fence.newest == 6
    with pytest.raises(StaleSupervisorError):
        fence.admit(5)


def test_a_command_without_an_epoch_is_admitted_and_changes_nothing() -> None:
    fence = SupervisorFence()
    fence.admit(None)
    assert fence.newest == 0
    fence.admit(3)
    fence.admit(None)  # an operator's cfgctl, after a supervisor's command
    assert fence.newest == 3


def test_observe_raises_the_newest_but_never_lowers_it() -> None:
    fence = SupervisorFence()
    fence.observe(4)  # e.g. the database's supervisor lease row at start-up
    with pytest.raises(StaleSupervisorError):
        fence.admit(3)
    fence.observe(2)
    assert fence.newest == 4
    with pytest.raises(ValueError, match="0 or more"):
        SupervisorFence(-1)


def test_the_code_is_known_to_the_client_side() -> None:
    assert ERRORS_BY_CODE["stale-supervisor"] is StaleSupervisorError
    assert issubclass(StaleSupervisorError, RequestError)


@given(st.lists(st.none() | st.integers(min_value=0, max_value=20), max_size=60))
def test_over_any_sequence_the_admitted_epochs_never_decrease(
    epochs: list[int | None],
) -> None:
    fence = SupervisorFence()
    admitted: list[int] = []
    for epoch in epochs:
        before = fence.newest
        try:
            fence.admit(epoch)
        except StaleSupervisorError as exc:
            assert epoch is not None  # refused only when older
            assert epoch < before
            assert fence.newest == before  # and then nothing changed
            assert f"epoch {epoch} is older than epoch {before}" in str(exc)
            continue
        if epoch is not None:
            assert epoch >= before  # and every epoch not older is admitted
            admitted.append(epoch)
        # the newest is the highest admitted epoch (0 before any)
        assert fence.newest == max(admitted, default=0)
    assert admitted == sorted(admitted)


# --- on the management port --------------------------------------------------------


class FakePair:
    """The pair driver's hooks, recording the role commands that got through."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.calls: list[str] = []

    async def promote(self, force: bool, over: int | None = None) -> dict[str, Any]:
        self.calls.append("promote")
        self.rt.set_role("primary")
        return self.rt.status()

    async def demote(self, force: bool = False) -> dict[str, Any]:
        self.calls.append("demote")
        self.rt.set_role("backup")
        return self.rt.status()

    def peer_ack(self) -> None:
        """Not used here."""


async def _serve(nursery: trio.Nursery, rt: Runtime, pair: FakePair | None) -> int:
    async def handler(link: Link) -> None:
        await ManagementSession(link, rt, SECRET, pair).run()

    listeners = await nursery.start(partial(serve, handler, 0, AddpOptions()))
    return int(listeners[0].socket.getsockname()[1])


def _manage(port: int, name: str) -> Any:
    return open_management("127.0.0.1", port, SECRET, expect=name)


async def test_role_commands_carry_the_supervisor_epoch_and_an_older_one_does_nothing(
    nursery: trio.Nursery,
) -> None:
    log = Capture()
    rt = runtime("confserv", log)
    pair = FakePair(rt)
    port = await _serve(nursery, rt, pair)
    async with _manage(port, "confserv") as m, _manage(port, "confserv") as other:
        assert m.initial_status["supervisor_epoch"] == 0  # in the auth answer too
        answer = await m.switch_to_backup(supervisor_epoch=5)
        assert (answer["role"], answer["supervisor_epoch"]) == ("backup", 5)
        # An older supervisor, on another connection: refused, nothing done.
        with pytest.raises(StaleSupervisorError) as refused:
            await other.switch_to_primary(force=True, over=1, supervisor_epoch=4)
        assert "supervisor epoch 4 is older than epoch 5" in str(refused.value)
        assert refused.value.newest == 5  # the answer says which epoch is newest
        assert pair.calls == ["demote"]
        assert rt.role == "backup"
        assert (await other.status())["supervisor_epoch"] == 5
        assert 20123 in log.ids
        # The active supervisor, then a newer one: admitted.
        assert (await m.switch_to_primary(supervisor_epoch=5))["role"] == "primary"
        answer = await m.switch_to_backup(supervisor_epoch=6)
        assert (answer["role"], answer["supervisor_epoch"]) == ("backup", 6)
        # An operator's command without an epoch: admitted as before.
        answer = await other.switch_to_primary()
        assert (answer["role"], answer["supervisor_epoch"]) == ("primary", 6)
        assert pair.calls == ["demote", "promote", "demote", "promote"]
        assert log.ids.count(20124) == 2  # epoch 5 first seen, then 6


@pytest.mark.parametrize("value", ["5", True, 2.0, None, -1])
async def test_a_malformed_supervisor_epoch_is_a_bad_request_and_does_nothing(
    nursery: trio.Nursery, value: Any
) -> None:
    rt = runtime("confserv")
    pair = FakePair(rt)
    port = await _serve(nursery, rt, pair)
    async with _manage(port, "confserv") as m:
        with pytest.raises(BadRequestError, match="supervisor_epoch"):
            await m.session.request("switch-to-backup", supervisor_epoch=value)
        assert pair.calls == []
        assert (await m.status())["supervisor_epoch"] == 0


async def test_a_proxy_refuses_a_follow_from_an_older_supervisor(nursery: trio.Nursery) -> None:
    rt = runtime("proxy")
    rt.role = "proxy"
    followed: list[tuple[str, int]] = []
    rt.redirect = lambda host, port: followed.append((host, port))
    port = await _serve(nursery, rt, None)
    async with _manage(port, "proxy") as m:
        answer = await m.follow("127.0.0.1", 7001, supervisor_epoch=3)
        assert answer["supervisor_epoch"] == 3
        with pytest.raises(StaleSupervisorError, match="epoch 2 is older than epoch 3"):
            await m.follow("127.0.0.1", 7002, supervisor_epoch=2)
        await m.follow("127.0.0.1", 7003)  # without an epoch: as before
        await m.follow("127.0.0.1", 7004, supervisor_epoch=3)
    assert followed == [("127.0.0.1", 7001), ("127.0.0.1", 7003), ("127.0.0.1", 7004)]


async def test_every_management_session_of_one_server_shares_its_fence(
    nursery: trio.Nursery,
) -> None:
    """Two servers in one process each have their own newest epoch."""
    one, two = runtime("one"), runtime("two")
    port_one = await _serve(nursery, one, FakePair(one))
    port_two = await _serve(nursery, two, FakePair(two))
    async with _manage(port_one, "one") as m:
        await m.switch_to_backup(supervisor_epoch=9)
    async with _manage(port_one, "one") as m:  # a new connection: the same newest
        assert (await m.status())["supervisor_epoch"] == 9
        with pytest.raises(StaleSupervisorError):
            await m.switch_to_backup(supervisor_epoch=8)
    async with _manage(port_two, "two") as m:
        assert (await m.status())["supervisor_epoch"] == 0
        await m.switch_to_backup(supervisor_epoch=8)
