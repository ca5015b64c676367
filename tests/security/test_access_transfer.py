"""Issue 12, access control: groups and grants export and import like every other
field (a Person's groups and a grant's folder follow the target's dbids), and
``cfgctl put`` takes them as text."""

from __future__ import annotations

from typing import Any, cast

import pytest

from confserv.admin.transfer import import_all, parse_fields
from confserv.client.session import ConfigClient
from confserv.wire.errors import FieldValueError


class Memory:
    """A client over a dict: dbids counted per type from ``start``."""

    def __init__(self, start: int) -> None:
        self.objects: dict[tuple[str, int], dict[str, Any]] = {}
        self.next = start

    async def get(self, type_name: str, name: str) -> dict[str, Any] | None:
        return next(
            (o for (t, _), o in self.objects.items() if t == type_name and o["name"] == name),
            None,
        )

    async def create(self, type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.next += 1
        self.objects[(type_name, self.next)] = {**obj, "type": type_name, "dbid": self.next}
        return {"dbid": self.next}

    async def update(self, type_name: str, dbid: int, delta: Any, options: Any = None) -> Any:
        self.objects[(type_name, dbid)].update(delta or {})
        return {"dbid": dbid}


async def test_groups_and_folder_grants_follow_the_target_dbids() -> None:
    export = {
        "objects": [
            {"type": "Folder", "dbid": 4, "name": "f", "object_type": "DN"},
            {"type": "AccessGroup", "dbid": 2, "name": "ops", "permissions": {"DN": "r"}},
            {
                "type": "Person",
                "dbid": 3,
                "name": "p",
                "access_group_dbids": [2],
                "permissions": {"folder:4": "ru", "*": "r"},
            },
        ]
    }
    target = Memory(start=100)
    counts = await import_all(cast("ConfigClient", target), export)
    assert counts["created"] == 3
    folder = await target.get("Folder", "f")
    group = await target.get("AccessGroup", "ops")
    person = await target.get("Person", "p")
    assert folder is not None
    assert group is not None
    assert person is not None
    assert person["access_group_dbids"] == [group["dbid"]]
    assert person["permissions"] == {f"folder:{folder['dbid']}": "ru", "*": "r"}


def test_put_takes_groups_and_grants_as_text() -> None:
    fields = parse_fields("Person", ["access_group_dbids=3,5", "permissions=*:r,folder:7:ru"])
    assert fields == {"access_group_dbids": [3, 5], "permissions": {"*": "r", "folder:7": "ru"}}
    assert parse_fields("Person", ["access_group_dbids=", "permissions="]) == {
        "access_group_dbids": [],
        "permissions": {},
    }
    for bad in ("access_group_dbids=a", "permissions=rcud"):
        with pytest.raises(FieldValueError):
            parse_fields("Person", [bad])
