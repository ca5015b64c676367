"""How ``cfgctl get`` and ``cfgctl types`` show objects and the object model.

Views of ``get``: ``table`` (the default: dbid, name, state and the type's
main fields, :data:`TABLE_FIELDS`), ``wide`` (every field, options in full), ``vertical`` (one
``field: value`` line each, a block per object, for long values and ``grep``)
and ``json``. ``--columns a,b`` picks the fields of ``table`` and ``wide``.
An unknown type or field is a :class:`ViewError` whose one line lists the
valid ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confserv.model.objects import OBJECT_TYPES, SECRET_FIELDS, Field, fields_of

if TYPE_CHECKING:
    from rich.table import Table

#: The views of ``cfgctl get --output``.
VIEWS = ("table", "wide", "vertical", "json")


#: The fields of each type the ``table`` view shows after dbid, name and state
#: (``wide`` shows every field).
TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Tenant": ("is_service_provider",),
    "Folder": ("object_type", "parent_dbid"),
    "Host": ("ip_address", "os_type", "lca_port"),
    "Application": (
        "app_type",
        "host_dbid",
        "port",
        "backup_server_dbid",
        "redundancy_type",
        "autorestart",
    ),
    "AccessGroup": ("is_administrator",),
    "Person": ("user_name", "first_name", "last_name", "is_agent", "access_group_dbids"),
    "Switch": ("switch_type", "physical_switch"),
    "DN": ("number", "dn_type", "switch_dbid"),
}


class ViewError(ValueError):
    """A type, field or view that does not exist; the message lists the valid ones."""


def object_type(text: str) -> str:
    """``host`` -> ``Host``; an unknown name lists the known ones."""
    for name in OBJECT_TYPES:
        if name.lower() == text.lower():
            return name
    raise ViewError(f"unknown object type {text!r} (types: {', '.join(OBJECT_TYPES)})")


def readable_fields(type_name: str) -> list[str]:
    """The fields a read returns for ``type_name``, in the model's order (no secrets)."""
    return [n for n in fields_of(type_name) if n not in SECRET_FIELDS]


def check_view(view: str) -> str:
    """``view`` if it is one of :data:`VIEWS`."""
    if view not in VIEWS:
        raise ViewError(f"--output: unknown view {view!r} (views: {', '.join(VIEWS)})")
    return view


def columns_of(type_name: str, view: str, chosen: str | None) -> list[str]:
    """The columns of ``view``: those given (checked), or the view's own."""
    valid = readable_fields(type_name)
    if chosen:
        picked = [c.strip() for c in chosen.split(",") if c.strip()]
        for name in picked:
            if name not in (*valid, "dbid", "options"):
                raise ViewError(
                    f"--columns: {type_name} has no field {name!r} "
                    f"(fields: dbid, {', '.join(valid)}, options)"
                )
        return picked
    if view == "table":
        own = [n for n in TABLE_FIELDS.get(type_name, ()) if n in valid]
        return ["dbid", "name", "state", *own]
    return ["dbid", *valid, "options"]


def cell(value: Any) -> str:
    """One value as text: lists with commas, maps as ``key=value`` pairs, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def options_text(options: Mapping[str, Mapping[str, str]]) -> str:
    """Options as ``section.key=value; ...``."""
    return "; ".join(f"{s}.{k}={v}" for s, kv in options.items() for k, v in kv.items())


def table(objects: Sequence[Mapping[str, Any]], title: str, columns: Sequence[str]) -> Table:
    """The rich table of ``objects`` with ``columns`` (``wide`` folds long cells)."""
    from rich.table import Table

    shown = Table(title=title)
    for name in columns:
        shown.add_column(name, overflow="fold")
    for obj in objects:
        shown.add_row(
            *[
                options_text(obj.get("options", {})) if c == "options" else cell(obj.get(c))
                for c in columns
            ]
        )
    return shown


def vertical(objects: Sequence[Mapping[str, Any]], type_name: str) -> str:
    """A block per object: a header line, then ``field: value`` aligned, options one a line."""
    blocks = []
    for obj in objects:
        rows = [(n, cell(obj.get(n))) for n in readable_fields(type_name)]
        rows += [
            (f"options.{s}.{k}", v)
            for s, kv in obj.get("options", {}).items()
            for k, v in kv.items()
        ]
        width = max(len(n) for n, _ in rows)
        header = f"*** {type_name} {obj.get('name')!r} (dbid {obj.get('dbid')}) ***"
        lines = (f"{n.rjust(width)}: {v}".rstrip() for n, v in rows)
        blocks.append("\n".join([header, *lines]))
    return "\n\n".join(blocks)


def as_json(objects: Sequence[Mapping[str, Any]]) -> str:
    """The objects as the server sent them, indented JSON."""
    return json.dumps(list(objects), indent=2, sort_keys=True)


def _kind(field: Field) -> str:
    if field.kind is list:
        return f"list of {field.ref} dbids"
    if field.kind is dict:
        return "rights (KEY:LETTERS,...)"
    if field.ref is not None:
        return f"{field.ref} dbid"
    if field.choices is not None:
        return " | ".join(field.choices)
    return field.kind.__name__


def _default(field: Field) -> str:
    if field.kind in (list, dict) or field.default is None:
        return ""
    return cell(field.default)


def type_rows(type_name: str) -> list[tuple[str, str, str]]:
    """``(field, kind, default)`` of every field of ``type_name`` a write accepts."""
    return [(n, _kind(f), _default(f)) for n, f in fields_of(type_name).items()]


def types_document() -> dict[str, list[dict[str, str]]]:
    """Every type's fields, for ``cfgctl types --json``."""
    return {
        t: [{"field": n, "kind": k, "default": d} for n, k, d in type_rows(t)] for t in OBJECT_TYPES
    }


def types_lines() -> list[str]:
    """``cfgctl types``: a line per type, its own fields after the common ones."""
    common = "name, state, folder_dbid, tenant_dbid"
    lines = [f"every type: {common}, options"]
    for name in OBJECT_TYPES:
        own = [
            n for n in fields_of(name) if n not in ("name", "state", "folder_dbid", "tenant_dbid")
        ]
        lines.append(f"{name}: {', '.join(own) or '(no fields of its own)'}")
    return lines
