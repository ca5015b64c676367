"""Whole-configuration export and import, and ``field=value`` arguments, for ``cfgctl``.

Export writes every object, in dependency order, with its dbid. Import
creates or updates objects by (type, name) and rewrites references through
the dbids the target database assigned, so an export of one database imports
into another.
"""

from __future__ import annotations

from typing import Any

from confserv.client.session import ConfigClient
from confserv.model.access import FOLDER_KEY
from confserv.model.objects import OBJECT_TYPES, fields_of, references
from confserv.wire.errors import FieldValueError, UnknownFieldError, UnknownTypeError

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
            raise UnknownFieldError(f"{type_name} has no field {key!r}")
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


async def import_all(client: ConfigClient, document: Any) -> dict[str, int]:
    """Create or update every object of an export; returns counts by action."""
    if not isinstance(document, dict) or not isinstance(document.get("objects"), list):
        raise FieldValueError("an import file must be a map with an 'objects' list")
    mapping: dict[tuple[str, int], int] = {}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    order = {name: i for i, name in enumerate(OBJECT_TYPES)}
    items = [o for o in document["objects"] if isinstance(o, dict)]
    items.sort(key=lambda o: order.get(str(o.get("type")), len(order)))
    deferred: list[tuple[str, int, str, int]] = []
    for item in items:
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
        existing = await client.get(type_name, str(obj.get("name")))
        if existing is None:
            made = await client.create(type_name, obj)
            dbid = int(made["dbid"])
            counts["created"] += 1
        else:
            dbid = int(existing["dbid"])
            delta = {
                k: v
                for k, v in obj.items()
                if k != "options" and existing.get(k) != v and k in fields_of(type_name)
            }
            options = _options_delta(existing.get("options", {}), obj.get("options", {}))
            if delta or options:
                await client.update(type_name, dbid, delta, options)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        if "dbid" in item:
            mapping[(type_name, int(item["dbid"]))] = dbid
    for type_name, old_dbid, field_name, old_ref in deferred:
        target = next(
            t for f, t, _ in references({"type": type_name, field_name: old_ref}) if f == field_name
        )
        new_ref = mapping.get((target, old_ref))
        if new_ref is not None:
            await client.update(type_name, mapping[(type_name, old_dbid)], {field_name: new_ref})
    return counts


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
