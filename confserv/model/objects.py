"""Configuration object types, their fields, and the pure rules for changing them.

An object is a plain dict (it travels as msgpack and exports as YAML)::

    {"type": "Host", "dbid": 3, "name": "hostA", "state": "enabled",
     "folder_dbid": None, "tenant_dbid": 1, "ip_address": "10.0.0.5", ...,
     "options": {"section": {"key": "value"}}}

This module validates creations and deltas against each type's fields and
applies deltas; it knows nothing of storage, sockets or time.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import copy
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from confserv.wire.errors import (
    BadRequestError,
    FieldValueError,
    UnknownFieldError,
    UnknownTypeError,
)

from .access import EVERY_TYPE, FOLDER_KEY, RightsTextError, parse_letters
from .passwords import hash_password


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an object type.

    Attributes:
        kind: the Python type of the value (``int``, ``str``, ``bool``; ``list``: a
            list of dbids of ``ref``; ``dict``: access rights, see
            :mod:`confserv.model.access`).
        default: the value when a creation does not give one.
        ref: the object type an ``*_dbid`` field points at, if any.
        choices: the allowed values, if restricted.
    """

    kind: type
    default: Any = None
    ref: str | None = None
    choices: tuple[str, ...] | None = None


STATES = ("enabled", "disabled")

#: Fields every object has besides ``type``, ``dbid`` and ``options``.
COMMON_FIELDS: dict[str, Field] = {
    "name": Field(str),
    "state": Field(str, "enabled", choices=STATES),
    "folder_dbid": Field(int, ref="Folder"),
    "tenant_dbid": Field(int, ref="Tenant"),
}

#: Per-type fields (PSDK's CfgTenant, CfgFolder, CfgHost, CfgApplication, ...).
TYPE_FIELDS: dict[str, dict[str, Field]] = {
    "Tenant": {"is_service_provider": Field(bool, False)},
    "Folder": {"object_type": Field(str, ""), "parent_dbid": Field(int, ref="Folder")},
    "Host": {
        "ip_address": Field(str, ""),
        "os_type": Field(str, "unix"),
        "lca_port": Field(int, 4999),
    },
    "Application": {
        "app_type": Field(str, "ConfigServer"),
        "is_server": Field(bool, True),
        "host_dbid": Field(int, ref="Host"),
        "port": Field(int, 0),
        "backup_server_dbid": Field(int, ref="Application"),
        "redundancy_type": Field(
            str, "not-specified", choices=("not-specified", "warm-standby", "hot-standby")
        ),
        "reconnect_timeout": Field(int, 10),
        "reconnect_attempts": Field(int, 1),
        "autorestart": Field(bool, False),
        "command_line": Field(str, ""),
        "command_line_arguments": Field(str, ""),
        "working_directory": Field(str, ""),
    },
    "AccessGroup": {
        "is_administrator": Field(bool, False),
        "permissions": Field(dict, MappingProxyType({})),
    },
    "Person": {
        "user_name": Field(str, ""),
        "first_name": Field(str, ""),
        "last_name": Field(str, ""),
        "employee_id": Field(str, ""),
        "is_agent": Field(bool, False),
        "password": Field(str, ""),  # accepted in writes; stored hashed as password_hash
        "access_group_dbids": Field(list, (), ref="AccessGroup"),
        "permissions": Field(dict, MappingProxyType({})),
    },
    "Switch": {"switch_type": Field(str, ""), "physical_switch": Field(str, "")},
    "DN": {
        "number": Field(str, ""),
        "dn_type": Field(str, "extension"),
        "switch_dbid": Field(int, ref="Switch"),
    },
}

#: The object types, in dependency order (what may be referenced comes first).
OBJECT_TYPES: tuple[str, ...] = tuple(TYPE_FIELDS)

#: Fields that are written but never read back.
SECRET_FIELDS = frozenset({"password"})
#: Where a secret field is stored instead.
STORED_SECRET = "password_hash"

#: Keys a read filter may use besides fields: ``dbid``.
FILTER_EXTRA = frozenset({"dbid"})


def check_type(type_name: Any) -> str:
    """Return ``type_name`` if it is a known object type."""
    if not isinstance(type_name, str) or type_name not in TYPE_FIELDS:
        raise UnknownTypeError(
            f"unknown object type {type_name!r} (known: {', '.join(OBJECT_TYPES)})"
        )
    return type_name


#: Each type's fields, common first, computed once (validation runs on every write).
_ALL_FIELDS: dict[str, Mapping[str, Field]] = {
    t: MappingProxyType({**COMMON_FIELDS, **own}) for t, own in TYPE_FIELDS.items()
}


#: Each type's fields whose values are lists or maps (copied by :func:`public_view`).
_CONTAINER_FIELDS: dict[str, tuple[str, ...]] = {
    t: tuple(n for n, f in fields.items() if f.kind in (list, dict))
    for t, fields in _ALL_FIELDS.items()
}


def fields_of(type_name: str) -> Mapping[str, Field]:
    """All fields of a type: the common ones, then its own (one shared, read-only map)."""
    return _ALL_FIELDS[check_type(type_name)]


def _check_dbids(type_name: str, name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise FieldValueError(f"{type_name}.{name} must be a list of dbids")
    out: list[int] = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or item <= 0:
            raise FieldValueError(f"{type_name}.{name} must hold positive dbids, got {item!r}")
        if item not in out:
            out.append(item)
    return out


def _check_permissions(type_name: str, name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FieldValueError(f"{type_name}.{name} must be a map of key to rights (rcud)")
    out: dict[str, str] = {}
    for key, text in value.items():
        folder = key[len(FOLDER_KEY) :] if isinstance(key, str) else ""
        if not (
            key == EVERY_TYPE
            or key in TYPE_FIELDS
            or (isinstance(key, str) and key.startswith(FOLDER_KEY) and folder.isdigit())
        ):
            raise FieldValueError(
                f"{type_name}.{name}: key {str(key)[:40]!r} must be '*', an object type or "
                "'folder:<dbid>'"
            )
        try:
            letters = parse_letters(text)
        except RightsTextError as exc:
            raise FieldValueError(f"{type_name}.{name}[{key!r}]: {exc}") from None
        if letters:
            out[key] = letters
    return out


def _check_value(type_name: str, name: str, field: Field, value: Any) -> Any:
    if field.kind is list:
        return _check_dbids(type_name, name, [] if value is None else value)
    if field.kind is dict:
        return _check_permissions(type_name, name, {} if value is None else value)
    if value is None:
        if field.ref is not None or name in ("folder_dbid", "tenant_dbid"):
            return None
        raise FieldValueError(f"{type_name}.{name} may not be null")
    ok = (
        isinstance(value, bool)
        if field.kind is bool
        else isinstance(value, field.kind) and not isinstance(value, bool)
    )
    if not ok:
        raise FieldValueError(
            f"{type_name}.{name} must be {field.kind.__name__}, got {type(value).__name__}"
        )
    if field.choices is not None and value not in field.choices:
        raise FieldValueError(
            f"{type_name}.{name} must be one of {', '.join(field.choices)}, got {value!r}"
        )
    if field.kind is int and field.ref is not None and value <= 0:
        raise FieldValueError(f"{type_name}.{name} must be a positive dbid, got {value}")
    if name == "name" and not value.strip():
        raise FieldValueError(f"{type_name}.name may not be empty")
    return value


def _check_options(type_name: str, options: Any, *, delta: bool) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise FieldValueError(f"{type_name}.options must be a map of sections")
    out: dict[str, Any] = {}
    for section, keys in options.items():
        if not isinstance(section, str) or not section:
            raise FieldValueError(f"{type_name}.options: section names must be non-empty strings")
        if keys is None and delta:
            out[section] = None  # delete the whole section
            continue
        if not isinstance(keys, Mapping):
            raise FieldValueError(f"{type_name}.options[{section!r}] must be a map of keys")
        checked: dict[str, str | None] = {}
        for key, value in keys.items():
            if not isinstance(key, str) or not key:
                raise FieldValueError(f"{type_name}.options[{section!r}]: keys must be strings")
            if value is None and delta:
                checked[key] = None
            elif not isinstance(value, str):
                raise FieldValueError(f"{type_name}.options[{section!r}][{key!r}] must be a string")
            else:
                checked[key] = value
        out[section] = checked
    return out


def new_object(type_name: str, data: Any) -> dict[str, Any]:
    """Validate a creation and return the object with defaults (no dbid yet).

    A ``password`` is replaced by its hash under ``password_hash``.
    """
    if not isinstance(data, Mapping):
        raise BadRequestError("the object to create must be a map")
    fields = fields_of(type_name)
    obj: dict[str, Any] = {"type": type_name}
    for key in data:
        if key not in fields and key not in ("options", "type", "dbid"):
            raise UnknownFieldError(f"{type_name} has no field {key!r}")
    if "name" not in data:
        raise FieldValueError(f"{type_name}.name is required")
    for name, field in fields.items():
        value = data.get(name, field.default)
        if name in SECRET_FIELDS:
            if not isinstance(value, str):
                raise FieldValueError(f"{type_name}.{name} must be str, got {type(value).__name__}")
            obj[STORED_SECRET] = hash_password(value) if value else ""
            continue
        obj[name] = _check_value(type_name, name, field, value)
    obj["options"] = _check_options(type_name, data.get("options", {}), delta=False)
    return obj


def check_delta(type_name: str, delta: Any, options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an update: changed fields, and an options delta (``None`` deletes)."""
    if delta is None:
        delta = {}
    if not isinstance(delta, Mapping):
        raise BadRequestError("an update's 'delta' must be a map of changed fields")
    fields = fields_of(type_name)
    out: dict[str, Any] = {}
    for key, value in delta.items():
        if key not in fields:
            raise UnknownFieldError(f"{type_name} has no field {key!r}")
        if key in SECRET_FIELDS:
            if not isinstance(value, str):
                raise FieldValueError(f"{type_name}.{key} must be str, got {type(value).__name__}")
            out[STORED_SECRET] = hash_password(value) if value else ""
            continue
        out[key] = _check_value(type_name, key, fields[key], value)
    opts = _check_options(type_name, options or {}, delta=True)
    return out, opts


def apply_delta(obj: dict[str, Any], delta: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Apply a validated delta to ``obj`` in place."""
    for key, value in delta.items():
        obj[key] = value
    current = obj.setdefault("options", {})
    for section, keys in options.items():
        if keys is None:
            current.pop(section, None)
            continue
        target = current.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        if not target:
            current.pop(section, None)


def public_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as clients see it: secrets removed, a copy (values are scalars, lists
    of ints or maps of str; options two levels of str maps: a full copy)."""
    out = dict(obj)
    out.pop(STORED_SECRET, None)
    for key in _CONTAINER_FIELDS.get(obj["type"], ()):
        if isinstance(value := out.get(key), (list, dict)):
            out[key] = copy(value)
    out["options"] = {s: dict(kv) for s, kv in obj.get("options", {}).items()}
    return out


def _reference_fields(type_name: str) -> tuple[tuple[str, str], ...]:
    out = []
    for name, field in fields_of(type_name).items():
        target = field.ref or {"folder_dbid": "Folder", "tenant_dbid": "Tenant"}.get(name)
        if target is not None:
            out.append((name, target))
    return tuple(out)


#: Per type, the ``(field, target type)`` of every reference field (computed once).
REFERENCE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    t: _reference_fields(t) for t in TYPE_FIELDS
}


def references(obj: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """The ``(field, type, dbid)`` references an object holds."""
    out = []
    for name, target in REFERENCE_FIELDS[obj["type"]]:
        value = obj.get(name)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, int) and not isinstance(item, bool):
                out.append((name, target, item))
    return out


def check_filter(type_name: str, flt: Any) -> dict[str, Any]:
    """Validate a read filter: equality on ``dbid`` or any field except secrets."""
    if flt is None:
        return {}
    if not isinstance(flt, Mapping):
        raise BadRequestError("a read 'filter' must be a map of field to value")
    fields = fields_of(type_name)
    for key in flt:
        if (key not in fields and key not in FILTER_EXTRA) or key in SECRET_FIELDS:
            raise UnknownFieldError(f"{type_name} has no field {key!r} to filter on")
        if key in fields and fields[key].kind in (list, dict):
            raise UnknownFieldError(f"{type_name}.{key} is not a field to filter on")
        value = flt[key]
        if value is not None and not isinstance(value, (str, int, bool, float)):
            raise FieldValueError(f"filter value for {key!r} must be a scalar, got {value!r}")
    return dict(flt)


def matches(obj: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    """Whether ``obj`` satisfies every equality of ``flt`` (``True`` is not ``1``)."""
    for key, value in flt.items():
        have = obj.get(key)
        if have != value or type(have) is not type(value):
            return False
    return True
