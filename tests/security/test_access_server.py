"""Issue 12, access control, end to end on a running server: the audit's findings
(an ordinary Person could reset the administrator's password, disable it, create
users who log in at once, rename or delete the servers' own Application objects;
a disabled user's open session kept writing; no-default-access had nothing behind
it) and the rights that replace them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from confserv.client.session import ConfigClient, open_client
from confserv.wire.errors import AuthError, ConnectionLostError, ConstraintError, RequestError
from tests.security.test_bounds_server import good_client, start

DENIED = "permission-denied"


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> dict[str, Any]:
    return await start(tmp_path, nursery)


@asynccontextmanager
async def login(server: dict[str, Any], user: str, password: str) -> AsyncIterator[ConfigClient]:
    async with open_client(
        [server["address"]], app=f"app-{user}", user=user, password=password
    ) as c:
        yield c


async def make_person(server: dict[str, Any], name: str, **fields: Any) -> int:
    async with good_client(server, app="admin-maker") as admin:
        made = await admin.create("Person", {"name": name, "password": "pw-" + name, **fields})
    return int(made["dbid"])


async def denied(call: Any) -> str:
    """The refusal's message; fails unless the server answered permission-denied."""
    with pytest.raises(RequestError) as caught:
        await call
    assert caught.value.code == DENIED, (
        f"expected {DENIED}, got {caught.value.code}: {caught.value}"
    )
    return str(caught.value)


def names(message: str, *words: str) -> None:
    """The refusal names each of ``words`` (the Person, the right, the type)."""
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


async def test_an_ordinary_person_cannot_reset_the_administrators_password(
    server: dict[str, Any],
) -> None:
    await make_person(server, "op")
    async with good_client(server) as admin:
        [root] = await admin.read("Person", {"name": "default"})
    async with login(server, "op", "pw-op") as op:
        message = await denied(op.update("Person", root["dbid"], {"password": "mine"}))
        names(message, "'op'", "change", "Person")
    # The administrator's password is what it was; the thief's is not it.
    async with good_client(server) as admin:
        assert admin.info["ok"]
    with pytest.raises(AuthError):
        async with login(server, "default", "mine"):
            pass


async def test_an_ordinary_person_cannot_disable_the_administrator(server: dict[str, Any]) -> None:
    await make_person(server, "op")
    async with good_client(server) as admin:
        [root] = await admin.read("Person", {"name": "default"})
    async with login(server, "op", "pw-op") as op:
        await denied(op.update("Person", root["dbid"], {"state": "disabled"}))
        await denied(op.delete("Person", root["dbid"]))
    async with good_client(server) as admin:
        [root] = await admin.read("Person", {"name": "default"})
        assert root["state"] == "enabled"


async def test_an_ordinary_person_cannot_create_users_who_log_in(server: dict[str, Any]) -> None:
    await make_person(server, "op")
    async with login(server, "op", "pw-op") as op:
        await denied(op.create("Person", {"name": "mole", "password": "pw"}))
    with pytest.raises(AuthError):
        async with login(server, "mole", "pw"):
            pass


async def test_the_servers_own_applications_are_for_administrators_only(
    server: dict[str, Any],
) -> None:
    # Even a Person with every right on Application may not rename or delete the
    # pair's own (it may other Applications).
    await make_person(server, "appman", permissions={"Application": "rcud", "Host": "r"})
    async with good_client(server) as admin:
        [own] = await admin.read("Application", {"name": "confserv"})
    async with login(server, "appman", "pw-appman") as op:
        message = await denied(op.update("Application", own["dbid"], {"name": "renamed"}))
        assert "administrator" in message
        await denied(op.delete("Application", own["dbid"]))
        other = await op.create("Application", {"name": "tserver", "app_type": "TServer"})
        await op.update("Application", other["dbid"], {"name": "tserver2"})
        await op.delete("Application", other["dbid"])
    async with good_client(server) as admin:
        assert [a["name"] for a in await admin.read("Application", {"dbid": own["dbid"]})] == [
            "confserv"
        ]


async def test_a_disabled_persons_open_session_ends_and_writes_nothing(
    server: dict[str, Any],
) -> None:
    dbid = await make_person(server, "writer", permissions={"*": "rcud"})
    async with login(server, "writer", "pw-writer") as w:
        await w.create("Host", {"name": "before"})
        async with good_client(server) as admin:
            await admin.update("Person", dbid, {"state": "disabled"})

        async def write_until_refused() -> None:
            while True:  # the session is closed at once; a write is refused
                await w.create("Host", {"name": "after"})

        with trio.fail_after(5), pytest.raises((ConnectionLostError, RequestError)) as caught:
            await write_until_refused()
        assert "disabled" in str(caught.value)
    async with good_client(server) as admin:
        assert await admin.read("Host", {"name": "after"}) == []
    log = server["log"]
    assert any("person 'writer' was disabled" in text for i, text in log.events if i == 20111)


async def test_a_deleted_persons_subscribed_session_is_closed(server: dict[str, Any]) -> None:
    dbid = await make_person(server, "listener")
    async with login(server, "listener", "pw-listener") as listener:
        await listener.subscribe("Host")
        async with good_client(server) as admin:
            await admin.delete("Person", dbid)
        with trio.fail_after(5), pytest.raises(ConnectionLostError, match="deleted"):
            await listener.notification()


async def test_by_default_a_new_person_reads_everything_and_writes_nothing(
    server: dict[str, Any],
) -> None:
    await make_person(server, "reader")
    async with good_client(server) as admin:
        await admin.create("Host", {"name": "h1"})
    async with login(server, "reader", "pw-reader") as r:
        assert [h["name"] for h in await r.read("Host")][-1] == "h1"
        message = await denied(r.create("Host", {"name": "h2"}))
        names(message, "create", "Host", "'reader'")


async def test_no_default_access_makes_new_persons_start_with_no_rights(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    server = await start(tmp_path, nursery, no_default_access=True)
    await make_person(server, "newbie")
    async with login(server, "newbie", "pw-newbie") as n:
        message = await denied(n.read("Host"))
        names(message, "read", "'newbie'")
        await denied(n.subscribe("Host"))
    # An administrator grants some: they take effect on the open session at once.
    async with good_client(server) as admin:
        [p] = await admin.read("Person", {"name": "newbie"})
        assert p["permissions"] == {}
        await admin.update("Person", p["dbid"], {"permissions": {"Host": "r"}})
    async with login(server, "newbie", "pw-newbie") as n:
        assert await n.read("Host") != []
        await denied(n.read("DN"))


async def test_a_person_changes_its_own_password_only(server: dict[str, Any]) -> None:
    dbid = await make_person(server, "self")
    async with login(server, "self", "pw-self") as me:
        await me.update("Person", dbid, {"password": "new-pw"})
        await denied(me.update("Person", dbid, {"first_name": "x"}))
    async with login(server, "self", "new-pw") as me:
        assert me.info["ok"]


async def test_no_person_grants_itself_a_right_or_takes_over_a_stronger_account(
    server: dict[str, Any],
) -> None:
    hr = await make_person(server, "hr", permissions={"Person": "rcu", "Host": "r"})
    boss = await make_person(server, "boss", permissions={"*": "rcud"})
    async with good_client(server) as admin:
        group = await admin.create("AccessGroup", {"name": "ops", "permissions": {"*": "rcud"}})
        [admins] = await admin.read("AccessGroup", {"name": "Administrators"})
    async with login(server, "hr", "pw-hr") as op:
        await denied(op.update("Person", hr, {"permissions": {"Person": "rcu", "Host": "rcud"}}))
        await denied(op.update("Person", hr, {"access_group_dbids": [group["dbid"]]}))
        await denied(op.update("Person", hr, {"access_group_dbids": [admins["dbid"]]}))
        await denied(op.update("Person", boss, {"password": "taken"}))
        await denied(op.create("Person", {"name": "alt", "permissions": {"DN": "rcud"}}))
        # The default grant (read on everything) counts as given by the creator.
        names(await denied(op.create("Person", {"name": "bare"})), "read", "'*'")
        await op.create("Person", {"name": "bare", "permissions": {}})
        # What it holds it may pass on.
        made = await op.create("Person", {"name": "junior", "permissions": {"Host": "r"}})
        await op.update("Person", made["dbid"], {"password": "pw"})


async def test_reads_and_notifications_show_only_what_the_person_may_read(
    server: dict[str, Any],
) -> None:
    async with good_client(server) as admin:
        open_f = await admin.create("Folder", {"name": "open", "object_type": "DN"})
        closed_f = await admin.create("Folder", {"name": "closed", "object_type": "DN"})
    await make_person(server, "dnr", permissions={f"folder:{open_f['dbid']}": "r"})
    async with login(server, "dnr", "pw-dnr") as r, good_client(server) as admin:
        await r.subscribe("DN")
        await admin.create("DN", {"name": "secret", "folder_dbid": closed_f["dbid"]})
        await admin.create("DN", {"name": "public", "folder_dbid": open_f["dbid"]})
        note = await r.notification()
        assert note["data"]["name"] == "public"
        assert [d["name"] for d in await r.read("DN")] == ["public"]
        restored = await r.restore(0)
        assert {c["data"].get("name") for c in restored["changes"] if c["type"] == "DN"} == {
            "public"
        }


async def test_one_publish_decides_what_each_person_sees_not_one_for_all(
    server: dict[str, Any],
) -> None:
    """A change is checked once per Person in a publish and the verdict shared by
    that Person's sessions (confserv.core.fanout.Outgoing): two sessions each of two
    Persons who may read different folders, and an administrator, all subscribed;
    each sees exactly what its own Person may, whichever session the publisher
    reached first."""
    async with good_client(server) as admin:
        left = await admin.create("Folder", {"name": "left", "object_type": "DN"})
        right = await admin.create("Folder", {"name": "right", "object_type": "DN"})
    await make_person(server, "lefty", permissions={f"folder:{left['dbid']}": "r"})
    await make_person(server, "righty", permissions={f"folder:{right['dbid']}": "r"})
    async with (
        login(server, "lefty", "pw-lefty") as l1,
        login(server, "lefty", "pw-lefty") as l2,
        login(server, "righty", "pw-righty") as r1,
        login(server, "righty", "pw-righty") as r2,
        good_client(server, app="watcher") as watcher,
        good_client(server) as admin,
    ):
        for c in (l1, l2, r1, r2, watcher):
            await c.subscribe("DN")
        for name, folder in (
            ("on-the-left", left),
            ("on-the-right", right),
            ("left-again", left),
            ("right-again", right),
        ):
            await admin.create("DN", {"name": name, "folder_dbid": folder["dbid"]})

        async def names_seen(c: ConfigClient, count: int) -> list[str]:
            return [(await c.notification())["data"]["name"] for _ in range(count)]

        with trio.fail_after(10):
            # In order, and nothing of the other folder between: each Person's own.
            for c in (l1, l2):
                assert await names_seen(c, 2) == ["on-the-left", "left-again"]
            for c in (r1, r2):
                assert await names_seen(c, 2) == ["on-the-right", "right-again"]
            assert await names_seen(watcher, 4) == [
                "on-the-left",
                "on-the-right",
                "left-again",
                "right-again",
            ]


async def test_denied_requests_are_logged_once_per_interval(server: dict[str, Any]) -> None:
    await make_person(server, "pest")
    async with login(server, "pest", "pw-pest") as p:
        for _ in range(200):
            with pytest.raises(RequestError):
                await p.create("Host", {"name": "x"})
    lines = [text for i, text in server["log"].events if i == 20198]
    assert 1 <= len(lines) <= 2, lines
    assert "pest" in lines[0]


async def test_the_administrator_does_everything(server: dict[str, Any]) -> None:
    async with good_client(server) as admin:
        group = await admin.create("AccessGroup", {"name": "g", "permissions": {"DN": "r"}})
        p = await admin.create("Person", {"name": "x", "access_group_dbids": [group["dbid"]]})
        with pytest.raises(ConstraintError, match="referenced by Person"):
            await admin.delete("AccessGroup", group["dbid"])
        await admin.delete("Person", p["dbid"])
        await admin.delete("AccessGroup", group["dbid"])


async def test_the_last_administrator_cannot_be_removed(server: dict[str, Any]) -> None:
    async with good_client(server) as admin:
        [root] = await admin.read("Person", {"name": "default"})
        [admins] = await admin.read("AccessGroup", {"name": "Administrators"})
        for call in (
            admin.update("Person", root["dbid"], {"state": "disabled"}),
            admin.update("Person", root["dbid"], {"access_group_dbids": []}),
            admin.update("AccessGroup", admins["dbid"], {"is_administrator": False}),
            admin.update("AccessGroup", admins["dbid"], {"state": "disabled"}),
        ):
            with pytest.raises(ConstraintError, match="no enabled administrator"):
                await call
        # With a second administrator, the first may go.
        await admin.create(
            "Person", {"name": "root2", "password": "pw", "access_group_dbids": [admins["dbid"]]}
        )
        await admin.update("Person", root["dbid"], {"access_group_dbids": []})
