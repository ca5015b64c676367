"""Issue 12, access control through a Configuration Server Proxy: the proxy enforces
the same rights as the master (reads filtered, writes checked before they are
relayed), the master checks a relayed write again as the Person the proxy names,
and a Person disabled on the master loses its sessions on the proxy too."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from confserv.client.session import open_client
from confserv.config.settings import DatabaseSettings
from confserv.wire.errors import ConnectionLostError, RequestError
from tests.confserv.test_pair import Proxy, Server, client, start_pair, wait_for

DENIED = "permission-denied"


@pytest.fixture
async def setup(tmp_path: Any, nursery: trio.Nursery) -> tuple[Server, Server, Proxy]:
    db = DatabaseSettings(section="db", engine="sqlite", dbname=str(tmp_path / "cfg.sqlite"))
    primary, backup = await start_pair(db, nursery)
    proxy = Proxy(primary, backup)
    await proxy.start(nursery)
    return primary, backup, proxy


def as_user(server: Server, user: str) -> Any:
    return open_client([server.address], app=f"app-{user}", user=user, password="pw-" + user)


async def person(primary: Server, proxy: Proxy, name: str, **fields: Any) -> int:
    async with client(primary) as admin:
        made = await admin.create("Person", {"name": name, "password": "pw-" + name, **fields})
    await wait_for(lambda: proxy.rt.service.get("Person", made["dbid"]) is not None)
    return int(made["dbid"])


async def test_the_proxy_refuses_what_the_master_would(setup: tuple[Server, Server, Proxy]) -> None:
    primary, _, proxy = setup
    await person(primary, proxy, "reader")
    async with as_user(proxy, "reader") as r:
        assert await r.read("Person") != []  # default access: read on everything
        with pytest.raises(RequestError) as caught:
            await r.create("Host", {"name": "via-proxy"})
        assert caught.value.code == DENIED
        [root] = await r.read("Person", {"name": "default"})
        with pytest.raises(RequestError) as caught:
            await r.update("Person", root["dbid"], {"password": "mine"})
        assert caught.value.code == DENIED
    assert primary.rt.service.find("Host", "via-proxy") is None


async def test_a_relayed_write_is_made_as_the_person_who_asked(
    setup: tuple[Server, Server, Proxy],
) -> None:
    primary, _, proxy = setup
    writer = await person(primary, proxy, "writer", permissions={"*": "r", "Host": "rc"})
    async with as_user(proxy, "writer") as w:
        made = await w.create("Host", {"name": "relayed"})
    assert primary.rt.service.get("Host", made["dbid"]) is not None
    # The master does not take the proxy's word for the right: it checks the Person.
    async with primary.manage() as m:
        for as_person, what in ((writer, "Tenant"), (None, "Host")):
            request: dict[str, Any] = {"op": "create", "type": what, "object": {"name": "forged"}}
            if as_person is not None:
                request["as_person"] = as_person
            with pytest.raises(RequestError) as caught:
                await m.session.request("forward", request=request)
            assert caught.value.code == DENIED
    assert primary.rt.service.find("Tenant", "forged") is None
    assert primary.rt.service.find("Host", "forged") is None


async def test_a_person_disabled_on_the_master_loses_its_proxy_sessions(
    setup: tuple[Server, Server, Proxy],
) -> None:
    primary, _, proxy = setup
    dbid = await person(primary, proxy, "roamer")
    async with as_user(proxy, "roamer") as r:
        await r.subscribe("Host")
        async with client(primary) as admin:
            await admin.update("Person", dbid, {"state": "disabled"})
        with trio.fail_after(5), pytest.raises(ConnectionLostError, match="disabled"):
            await r.notification()
