"""Whole-configuration export and import, and ``field=value`` arguments, for ``cfgctl``.

Export writes every object, in dependency order, with its dbid. Import
creates or updates objects by (type, name) and rewrites references through
the dbids the target database assigned, so an export of one database imports
into another, and importing the same file twice creates nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from confserv.model.access import FOLDER_KEY
from confserv.model.objects import OBJECT_TYPES, fields_of, references
from confserv.wire.errors import (
    ConnectionLostError,
    FieldValueError,
    UnknownFieldError,
    UnknownTypeError,
)

if TYPE_CHECKING:
    from confserv.client.session import ConfigClient

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def canonical_type(text: str) -> str:
    """``host`` -> ``Host``; unknown names raise UnknownTypeError."""
    for name in OBJECT_TYPES:
        if name.lower() == text.lower():
            return name
    raise UnknownTypeError(f"unknown object type {text!r} (known: {', '.join(OBJECT_TYPES)})")


def parse_fields(type_name: str, pairs: list[str]) -> dict[str, Any]:
    """``["port=2020", "autorestart=true"]`` -> typed values for ``type_name``."""
    fields = fields_of(type_name)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise FieldValueError(f"{pair!r} is not field=value")
        field = fields.get(key)
        if field is None:
            raise UnknownFieldError(
                f"{type_name} has no field {key!r} (fields: {', '.join(fields)})"
            )
        if field.kind is list:  # access_group_dbids=3,5 (empty: none)
            out[key] = _dbids(type_name, key, text)
        elif field.kind is dict:  # permissions=*:r,DN:rcud,folder:7:ru (empty: none)
            out[key] = _grants(type_name, key, text)
        elif text == "" and field.ref is not None:
            out[key] = None
        elif field.kind is int:
            try:
                out[key] = int(text)
            except ValueError:
                raise FieldValueError(f"{type_name}.{key} needs an integer, got {text!r}") from None
        elif field.kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise FieldValueError(f"{type_name}.{key} needs true or false, got {text!r}")
            out[key] = text.lower() in _TRUE
        else:
            out[key] = text
    return out


def _dbids(type_name: str, key: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FieldValueError(f"{type_name}.{key} needs dbids like 3,5, got {text!r}") from None


def _grants(type_name: str, key: str, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        grant_key, sep, letters = part.rpartition(":")
        if not part:
            continue
        if not sep or not grant_key:
            raise FieldValueError(
                f"{type_name}.{key} needs grants like *:r,DN:rcud,folder:7:ru, got {part!r}"
            )
        out[grant_key] = letters
    return out


def parse_options(pairs: list[str]) -> dict[str, dict[str, str | None]]:
    """``["TServer.link=a", "TServer.old="]`` -> options delta (empty value deletes)."""
    out: dict[str, dict[str, str | None]] = {}
    for pair in pairs:
        path, sep, value = pair.partition("=")
        section, dot, key = path.partition(".")
        if not sep or not dot or not section or not key:
            raise FieldValueError(f"option {pair!r} is not section.key=value")
        out.setdefault(section, {})[key] = value if value != "" else None
    return out


async def export_all(client: ConfigClient) -> dict[str, Any]:
    """Every object of every type, in dependency order."""
    objects: list[dict[str, Any]] = []
    for type_name in OBJECT_TYPES:
        objects.extend(sorted(await client.read(type_name), key=lambda o: o["dbid"]))
    return {"format": "cfgha-export", "version": 1, "objects": objects}


class ImportTarget(Protocol):
    """What :func:`import_all` writes through: a client, resilient or not."""

    async def get(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The object of that type and name, or None."""

    async def create(self, type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; the answer has ``dbid``."""

    async def update(
        self,
        type_name: str,
        dbid: int,
        delta: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change fields and options."""


#: Times one object is tried again after its write was cut off (outcome unknown).
WRITE_RETRIES = 5


def import_items(document: Any) -> list[dict[str, Any]]:
    """The objects of an export, in dependency order (FieldValueError: not an export)."""
    if not isinstance(document, dict) or not isinstance(document.get("objects"), list):
        raise FieldValueError("an import file must be a map with an 'objects' list")
    order = {name: i for i, name in enumerate(OBJECT_TYPES)}
    items = [o for o in document["objects"] if isinstance(o, dict)]
    items.sort(key=lambda o: order.get(str(o.get("type")), len(order)))
    return items


async def import_all(
    client: ImportTarget,
    document: Any,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Create or update every object of an export; returns counts by action.

    Objects are matched by (type, name), so importing the same file again
    creates nothing twice: what is there with the same content is left
    (``unchanged``), what differs is updated. A write cut off by a lost
    connection (its outcome unknown, e.g. a failover) is checked and done
    again on the new connection. ``on_done`` is told how many objects are
    done after each one.
    """
    items = import_items(document)
    mapping: dict[tuple[str, int], int] = {}
    current: dict[tuple[str, int], dict[str, Any]] = {}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    deferred: list[tuple[str, int, str, int]] = []
    for done, item in enumerate(items, 1):
        type_name = canonical_type(str(item.get("type")))
        obj = {k: v for k, v in item.items() if k not in ("type", "dbid")}
        _remap_access(obj, mapping)
        for field_name, target, old in references({**item, "type": type_name}):
            new = mapping.get((target, old))
            if isinstance(obj.get(field_name), list):
                continue  # a list of groups: remapped by _remap_access
            if new is None:
                obj.pop(field_name)  # points forward (same type): set once all exist
                deferred.append((type_name, int(item["dbid"]), field_name, old))
            else:
                obj[field_name] = new
        action, dbid, stored = await _retried(partial(_put_one, client, type_name, obj))
        counts[action] += 1
        if "dbid" in item:
            mapping[(type_name, int(item["dbid"]))] = dbid
            current[(type_name, dbid)] = stored
        if on_done is not None:
            on_done(done)
    for type_name, old_dbid, field_name, old_ref in deferred:
        target = next(
            t for f, t, _ in references({"type": type_name, field_name: old_ref}) if f == field_name
        )
        new_ref = mapping.get((target, old_ref))
        dbid = mapping[(type_name, old_dbid)]
        if new_ref is not None and current[(type_name, dbid)].get(field_name) != new_ref:
            await _retried(partial(client.update, type_name, dbid, {field_name: new_ref}))
    return counts


async def _retried(write: Callable[[], Awaitable[T]]) -> T:
    """``write()``, again after a ConnectionLostError (it checks what is there first)."""
    for _ in range(WRITE_RETRIES):
        try:
            return await write()
        except ConnectionLostError:
            continue  # outcome unknown: the next try sees whether it was done
    return await write()


async def _put_one(
    client: ImportTarget, type_name: str, obj: dict[str, Any]
) -> tuple[str, int, dict[str, Any]]:
    """Create ``obj`` or bring the object of its name up to it: (action, dbid, object)."""
    existing = await client.get(type_name, str(obj.get("name")))
    if existing is None:
        made = await client.create(type_name, obj)
        return "created", int(made["dbid"]), obj
    dbid = int(existing["dbid"])
    delta = {
        k: v
        for k, v in obj.items()
        if k != "options" and existing.get(k) != v and k in fields_of(type_name)
    }
    options = _options_delta(existing.get("options", {}), obj.get("options", {}))
    if not delta and not options:
        return "unchanged", dbid, existing
    await client.update(type_name, dbid, delta, options)
    return "updated", dbid, {**existing, **delta}


def _remap_access(obj: dict[str, Any], mapping: dict[tuple[str, int], int]) -> None:
    """Rewrite a Person's groups and a grant's ``folder:<dbid>`` keys through the
    target database's dbids (groups and folders are imported before Persons)."""
    groups = obj.get("access_group_dbids")
    if isinstance(groups, list):
        obj["access_group_dbids"] = [
            mapping[("AccessGroup", g)] for g in groups if ("AccessGroup", g) in mapping
        ]
    grants = obj.get("permissions")
    if isinstance(grants, dict):
        out = {}
        for key, letters in grants.items():
            if (
                isinstance(key, str)
                and key.startswith(FOLDER_KEY)
                and key[len(FOLDER_KEY) :].isdigit()
            ):
                folder = mapping.get(("Folder", int(key[len(FOLDER_KEY) :])))
                if folder is None:
                    continue
                key = f"{FOLDER_KEY}{folder}"
            out[key] = letters
        obj["permissions"] = out


def _options_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for section in old.keys() - new.keys():
        delta[section] = None
    for section, keys in new.items():
        before = old.get(section, {})
        changes = {k: v for k, v in keys.items() if before.get(k) != v}
        changes.update({k: None for k in before.keys() - keys.keys()})
        if changes:
            delta[section] = changes
    return delta
