"""A session's Gate (confserv/core/access_checks.py): the Person it acts as, looked up
again after every Person or group change and every reload of memory, and only then."""

from __future__ import annotations

from typing import Any

import pytest

from confserv.core.access_checks import Gate, PersonGoneError
from confserv.core.service import ConfigService
from confserv.store.base import Change, Snapshot

ADMINS = {"type": "AccessGroup", "dbid": 1, "name": "Admins", "state": "enabled",
          "is_administrator": True}  # fmt: skip


def _person(**extra: Any) -> dict[str, Any]:
    return {"type": "Person", "dbid": 7, "name": "ann", "state": "enabled",
            "access_group_dbids": [1], **extra}  # fmt: skip


def _memory(person: dict[str, Any], serial: int = 2) -> ConfigService:
    svc = ConfigService(None)
    svc.load(Snapshot([dict(ADMINS), person], serial))
    return svc


def _change(svc: ConfigService, type_name: str, dbid: int, delta: dict[str, Any]) -> None:
    serial = svc.last_serial + 1
    svc.apply(Change(serial, 1, "change", type_name, dbid, {"delta": delta}, 0.0))


def test_a_person_or_group_change_is_seen_by_the_next_call() -> None:
    svc = _memory(_person())
    gate = Gate(svc, svc.access, _person())
    assert gate.actor().admin
    _change(svc, "AccessGroup", 1, {"is_administrator": False})
    assert not gate.actor().admin
    _change(svc, "Person", 7, {"state": "disabled"})
    with pytest.raises(PersonGoneError, match="disabled"):
        gate.actor()


def test_a_reload_of_memory_is_seen_by_the_next_call() -> None:
    """A reload replaces every object without a change per object (an operator's
    reload, a database that went back): the Gate must not keep what it resolved."""
    svc = _memory(_person())
    gate = Gate(svc, svc.access, _person())
    assert gate.actor().admin
    svc.load(Snapshot([dict(ADMINS), _person(access_group_dbids=[])], 3))
    assert not gate.actor().admin
    svc.load(Snapshot([dict(ADMINS)], 4), allow_older=True)
    with pytest.raises(PersonGoneError, match="deleted"):
        gate.actor()


def test_between_changes_the_person_is_resolved_once() -> None:
    svc = _memory(_person())
    gate = Gate(svc, svc.access, _person())
    first = gate.actor()
    host = {"type": "Host", "dbid": 9, "name": "h1", "state": "enabled"}
    svc.apply(Change(svc.last_serial + 1, 1, "add", "Host", 9, host, 0.0))
    assert gate.actor() is first  # no Person or group change: the same Principal
    _change(svc, "Person", 7, {"name": "ann"})
    assert gate.actor() is not first
