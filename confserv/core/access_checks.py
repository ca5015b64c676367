"""Access control over the service's memory: who is asking, and may it (issue 12).

The rules are :mod:`confserv.model.access` (pure). This module finds the
objects they need in a :class:`~confserv.core.service.ConfigService`'s
memory: the logged-in Person and its groups (:class:`Gate`, one per client
session, caching the resolved Person until a Person or AccessGroup changes),
the object a write touches, and the pair's own Application objects. It also
holds :class:`AccessWatch`, told of every applied change, which ends the
sessions of a Person that is disabled or deleted, on a master and on a proxy
alike (both apply every change through ``ConfigService.apply``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from confserv.logs import events
from confserv.logs.eventlog import EventLog
from confserv.logs.peer_text import peer_repr
from confserv.model.access import (
    Principal,
    WriteRequest,
    check_write,
    group_dbids,
    may_read_type,
    principal,
    rights_of,
)
from confserv.model.objects import apply_delta, check_type
from confserv.store.base import Change
from confserv.wire.errors import ConstraintError, PermissionDeniedError

#: What a Person created without grants or groups gets when the server does not
#: have ``no-default-access = true``: read on everything (Genesys' default access).
DEFAULT_GRANT = {"*": "r"}


class PersonGoneError(PermissionDeniedError):
    """The session's Person was disabled or deleted: answered, then the session ends."""


class Memory(Protocol):
    """What the checks read of the service."""

    def get(self, type_name: str, dbid: int) -> dict[str, Any] | None:
        """The stored object, or None."""

    def find(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The stored object of that name, or None."""

    def all_objects(self) -> Iterable[dict[str, Any]]:
        """Every stored object."""


class AccessWatch:
    """Sessions by Person dbid, ended when that Person is disabled or deleted; and a
    generation counted up at every Person or AccessGroup change (sessions' caches)."""

    def __init__(self) -> None:
        self.generation = 0
        self._ends: dict[int, dict[int, Callable[[str], None]]] = {}

    def watch(self, dbid: int, key: int, end: Callable[[str], None]) -> None:
        """Call ``end(why)`` when Person ``dbid`` is disabled or deleted."""
        self._ends.setdefault(dbid, {})[key] = end

    def unwatch(self, dbid: int, key: int) -> None:
        """Stop watching for session ``key``."""
        ends = self._ends.get(dbid)
        if ends is not None:
            ends.pop(key, None)
            if not ends:
                del self._ends[dbid]

    def sessions_of(self, dbid: int) -> int:
        """How many sessions of Person ``dbid`` are watched."""
        return len(self._ends.get(dbid, {}))

    def applied(self, change: Change) -> None:
        """Told of every change applied to memory (committed here or replicated)."""
        if change.type not in ("Person", "AccessGroup"):
            return
        self.generation += 1
        if change.type != "Person":
            return
        if change.op == "delete":
            why = "deleted"
        elif change.op == "change" and change.data.get("delta", {}).get("state") == "disabled":
            why = "disabled"
        else:
            return
        for end in list(self._ends.get(change.dbid, {}).values()):
            end(why)


def find_person(svc: Memory, user: str) -> dict[str, Any] | None:
    """The Person a login names (its name, or else its user_name), as the login does."""
    person = svc.find("Person", user)
    if person is None:
        for obj in svc.all_objects():
            if obj["type"] == "Person" and obj.get("user_name") == user:
                return obj
    return person


def groups_for(svc: Memory, dbids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The AccessGroups of ``dbids`` that exist, by dbid."""
    out = {}
    for dbid in dbids:
        group = svc.get("AccessGroup", dbid)
        if group is not None:
            out[dbid] = group
    return out


def resolve(svc: Memory, person: Mapping[str, Any]) -> Principal:
    """``person`` with its groups as memory holds them."""
    return principal(person, groups_for(svc, group_dbids(person)))


class Gate:
    """The Person of one client session, resolved once per Person/group change."""

    def __init__(self, svc: Memory, watch: AccessWatch, person: Mapping[str, Any]) -> None:
        self.svc = svc
        self.watch = watch
        self.dbid = int(person["dbid"])
        self.name = str(person["name"])
        self._cached: tuple[int, object, Principal] | None = None

    def actor(self) -> Principal:
        """The Person as it is now; PersonGoneError once it is disabled or deleted."""
        person = self.svc.get("Person", self.dbid)
        cached = self._cached
        if cached is not None and cached[0] == self.watch.generation and cached[1] is person:
            who = cached[2]
        elif person is None:
            raise PersonGoneError(f"person {self.name!r} was deleted")
        else:
            who = resolve(self.svc, person)
            self._cached = (self.watch.generation, person, who)
        if not who.enabled:
            raise PersonGoneError(f"person {self.name!r} was disabled")
        return who


def readable(who: Principal, obj: Mapping[str, Any]) -> bool:
    """Whether ``who`` may read ``obj``."""
    return who.admin or rights_of(who, str(obj["type"]), obj.get("folder_dbid")).has("r")


def check_read_type(who: Principal, type_name: str) -> None:
    """Refuse a read or subscription of a type ``who`` may read nothing of."""
    if not who.admin and not may_read_type(who, type_name):
        raise PermissionDeniedError(f"person {who.name!r} has no read right on type {type_name}")


def change_readable(who: Principal, svc: Memory, change: Change) -> bool:
    """Whether ``who`` may see ``change`` (a deletion: by its type's right)."""
    if who.admin:
        return True
    if change.op == "add":
        return readable(who, change.data)
    if change.op == "change":
        obj = svc.get(change.type, change.dbid)
        return obj is not None and readable(who, obj)
    return rights_of(who, change.type).has("r")


def protected_apps(svc: Memory, own_app: str) -> set[int]:
    """The dbids of this pair's own Application objects: the server's own (by its
    section name), its backup, and the primary whose backup it is."""
    own = svc.find("Application", own_app)
    if own is None:
        return set()
    out = {int(own["dbid"])}
    if isinstance(own.get("backup_server_dbid"), int):
        out.add(int(own["backup_server_dbid"]))
    for obj in svc.all_objects():
        if obj["type"] == "Application" and obj.get("backup_server_dbid") == own["dbid"]:
            out.add(int(obj["dbid"]))
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def authorize(
    svc: Memory, who: Principal, op: str, request: Mapping[str, Any], own_app: str
) -> None:
    """Raise PermissionDeniedError unless ``who`` may make the write ``request``
    (``create``/``update``/``delete``). A malformed request passes here and is
    refused by the write path with its own error. Whoever asks, a write that
    would leave no enabled administrator is refused (ConstraintError)."""
    type_name = check_type(request.get("type"))
    if who.admin and type_name not in ("Person", "AccessGroup"):
        return
    current = None
    new: dict[str, Any] | None = None
    changed: frozenset[str] = frozenset()
    options = request.get("options")
    if op == "create":
        obj = request.get("object")
        new = {**obj, "type": type_name} if isinstance(obj, Mapping) else {"type": type_name}
    else:
        dbid = _int(request.get("dbid"))
        current = svc.get(type_name, dbid) if dbid is not None else None
        if current is None:
            return  # not found: refused as such
        if op == "update":
            delta = request.get("delta") or {}
            if not isinstance(delta, Mapping):
                return
            changed = frozenset(str(k) for k in delta)
            new = copy.deepcopy(current)
            apply_delta(new, {k: v for k, v in delta.items() if k != "password"}, {})
    if not who.admin:
        _check(svc, who, op, type_name, current, new, changed, bool(options), own_app)
    if type_name in ("Person", "AccessGroup") and current is not None:
        keep_an_administrator(svc, current, new)


def _check(
    svc: Memory,
    who: Principal,
    op: str,
    type_name: str,
    current: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    changed: frozenset[str],
    options_changed: bool,
    own_app: str,
) -> None:
    target = None
    if type_name == "Person" and current is not None:  # as if enabled: enabling hands it out
        target = principal(current, groups_for(svc, group_dbids(current)), assume_enabled=True)
    joined = group_dbids(new) if type_name == "Person" and new is not None else []
    req = WriteRequest(
        op=op,
        type_name=type_name,
        current=current,
        new=new,
        changed=changed,
        options_changed=options_changed,
        protected=type_name == "Application"
        and current is not None
        and int(current["dbid"]) in protected_apps(svc, own_app),
        target=target,
    )
    check_write(who, req, groups_for(svc, joined))


def _persons(svc: Memory) -> Iterable[dict[str, Any]]:
    return (o for o in svc.all_objects() if o["type"] == "Person")


def keep_an_administrator(
    svc: Memory, current: Mapping[str, Any], new: Mapping[str, Any] | None
) -> None:
    """Refuse a change or deletion of a Person or AccessGroup that leaves no enabled
    administrator (nobody could administer the configuration any more). Only
    writes that touch an administrator are looked at; then every Person is."""
    kind, dbid = current["type"], current["dbid"]
    if kind == "AccessGroup" and current.get("is_administrator") is not True:
        return
    if kind == "Person" and not resolve(svc, current).admin:
        return

    def after(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return new if obj["type"] == kind and obj["dbid"] == dbid else obj

    for person in _persons(svc):
        p = after(person)
        if p is None or p.get("state") != "enabled":
            continue
        groups = {}
        for g, group in groups_for(svc, group_dbids(p)).items():
            if (changed := after(group)) is not None:
                groups[g] = changed
        if principal(p, groups).admin:
            return
    raise ConstraintError(
        f"{kind} {dbid} ({str(current.get('name'))[:64]!r}): this write would leave no "
        "enabled administrator, and nobody could administer the configuration; make "
        "another Person an administrator first"
    )


def with_default_access(type_name: str, obj: Any, no_default_access: bool) -> Any:
    """The object to create: a new Person that names neither ``permissions`` nor
    ``access_group_dbids`` gets :data:`DEFAULT_GRANT` unless the server has
    ``no-default-access = true``. The grant is checked as given by its creator
    (who must hold it): nobody gains a right by creating a Person."""
    if (
        type_name != "Person"
        or no_default_access
        or not isinstance(obj, Mapping)
        or "permissions" in obj
        or "access_group_dbids" in obj
    ):
        return obj
    return {**obj, "permissions": dict(DEFAULT_GRANT)}


def no_default_access(options: Mapping[str, str] | None) -> bool:
    """Whether the server's shared options (``Runtime.options``) say
    ``no-default-access = true``."""
    return (options or {}).get("server no-default-access") == "true"


def log_denied(log: EventLog, peer: str, op: Any, exc: PermissionDeniedError) -> None:
    """One line per peer per interval for refused requests; the repeats counted
    (the event log's own rate limiter writes the summary)."""
    fields = {"op": peer_repr(op), "peer": peer, "reason": str(exc)[:300]}
    note = (events.ACCESS_DENIED, events.ACCESS_DENIED.template.format(**fields))
    if log.limiter.allow((events.ACCESS_DENIED.id, peer), time.time(), note):
        log.emit(events.ACCESS_DENIED, **fields)
    else:
        log.lines_held += 1
