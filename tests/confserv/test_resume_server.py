"""Resumption tickets through a real server (SQLite and PostgreSQL) and the client library.

A session logged in with its password gets a ticket; a new connection with
it registers with no password check (the server's scrypt count does not move,
event 20128). Refused, with the reason in a 20112 line and the client falling
back to its password: after the Person's password changed, after the ticket
expired, a ticket of another pair, a forged one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from confserv.admin.bootstrap import init_database
from confserv.client.session import open_client
from confserv.core.resume_tickets import TicketKey, binding, issue
from confserv.model.access import Principal
from confserv.server.app import run_server
from confserv.wire.errors import AuthError

from .conftest import ADMIN_PASSWORD, LogCapture, make_settings

pytestmark = pytest.mark.integration


def _client(address: tuple[str, int], password: str, ticket: str | None, user: str = "default"):
    return open_client([address], app="r", user=user, password=password, ticket=ticket)


def _refusals(log: LogCapture) -> list[str]:
    return [text for event_id, text in log.events if event_id == 20112]


async def test_a_ticket_resumes_without_a_password_check(server: dict[str, Any]) -> None:
    rt, log = server["runtime"], server["log"]
    async with _client(server["address"], ADMIN_PASSWORD, None) as first:
        ticket = first.info["ticket"]
    checks = rt.service.passwords.hashes
    async with _client(server["address"], "not the password", ticket) as again:
        assert again.info["ticket"] != ticket  # a fresh one each time
        assert await again.read("Person", {"name": "default"})
    assert rt.service.passwords.hashes == checks  # no scrypt for it
    assert rt.resumed == 1
    assert 20128 in log.ids()


async def test_a_changed_password_voids_the_ticket(server: dict[str, Any]) -> None:
    address, log = server["address"], server["log"]
    async with _client(address, ADMIN_PASSWORD, None) as admin:
        await admin.create("Person", {"name": "agent1", "password": "old-pass"})
        async with _client(address, "old-pass", None, "agent1") as agent:
            ticket = agent.info["ticket"]
        [person] = await admin.read("Person", {"name": "agent1"})
        await admin.update("Person", person["dbid"], {"password": "new-pass"})
    with pytest.raises(AuthError, match="wrong user name or password"):
        async with _client(address, "old-pass", ticket, "agent1"):
            pass
    assert any("the Person's password or rights changed since" in t for t in _refusals(log))
    async with _client(address, "new-pass", ticket, "agent1") as agent:  # falls back
        assert agent.info["ticket"]


async def test_another_pairs_or_a_forged_ticket_is_refused(server: dict[str, Any]) -> None:
    address, log, rt = server["address"], server["log"], server["runtime"]
    person = rt.service.find("Person", "default")
    who = Principal(int(person["dbid"]), "default", True, True, {})
    other = TicketKey(b"another pair's key", rt.tickets.database)
    foreign = issue(other, who.dbid, binding(str(person["password_hash"]), who), time.time(), 60)
    for ticket in (foreign, "v1.e30.AAAA"):
        with pytest.raises(AuthError):
            async with _client(address, "wrong", ticket):
                pass
    assert sum("not issued by this pair" in t for t in _refusals(log)) == 2
    assert rt.resumed == 0


async def test_an_expired_ticket_is_refused(db_settings: Any, nursery: trio.Nursery) -> None:
    settings = make_settings(db_settings, resume_ticket_ttl=0.2)
    await init_database(settings, None, ADMIN_PASSWORD)
    log = LogCapture()
    info = await nursery.start(
        lambda task_status: run_server(settings, log=log, task_status=task_status)
    )
    address = ("127.0.0.1", info["port"])
    async with _client(address, ADMIN_PASSWORD, None) as first:
        ticket = first.info["ticket"]
    expires = time.time() + 0.2
    while time.time() < expires + 0.01:  # the ticket's wall-clock expiry
        await trio.sleep(0.01)
    with pytest.raises(AuthError):
        async with _client(address, "wrong", ticket):
            pass
    assert any("resumption ticket refused: expired" in t for t in _refusals(log))
