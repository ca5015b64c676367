"""Access control in the Genesys manner: the pure rules (no storage, no sockets, no time).

Rights are four letters, per object type, per folder or for every type::

    r  read      c  create      u  change (update)      d  delete

A Person's ``permissions`` and an AccessGroup's ``permissions`` map a key to
letters: ``"*"`` (every type), a type name (``"DN"``), or ``"folder:<dbid>"``
(the objects in that Folder). A Person names the groups it belongs to in
``access_group_dbids``. Its rights on an object are the union of its own
grants and those of its enabled groups for ``"*"``, the object's type and the
object's folder. A member of an enabled group with ``is_administrator`` has
every right; a disabled Person has none.

What a write needs besides the right on the object (:func:`check_write`):

- a Person may change its own password without any right;
- changing another Person's password, state, grants or groups, or deleting
  it, needs the change (delete) right on Person and that the actor holds every
  right the target holds (``dominates``): nobody takes over an account above
  its own; an administrator is changed only by an administrator;
- a grant written (on a Person or a group, created or changed) or a group
  joined may only give letters the actor holds itself for that key; only an
  administrator creates or changes an administrator group;
- objects marked protected (the pair's own Application objects) are changed
  or deleted by administrators only.

So no Person can give itself, or anyone, a right it does not have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confserv.wire.errors import PermissionDeniedError

#: The rights' letters, in their canonical order, and their names.
LETTERS = "rcud"
NAMES = {"r": "read", "c": "create", "u": "change", "d": "delete"}
#: What a write operation needs.
OP_RIGHT = {"create": "c", "update": "u", "delete": "d"}
#: A grant key for every type, and the prefix of a folder's key.
EVERY_TYPE = "*"
FOLDER_KEY = "folder:"
#: Person fields whose change on another Person needs dominance (they decide who logs
#: in and with which rights).
GUARDED_PERSON_FIELDS = frozenset(
    {"password", "state", "permissions", "access_group_dbids", "name", "user_name"}
)


class RightsTextError(ValueError):
    """A rights text holds letters other than ``rcud``, or one twice."""


def parse_letters(text: str) -> str:
    """``"ur"`` -> ``"ru"`` (canonical order); RightsTextError for anything else."""
    if not isinstance(text, str):
        raise RightsTextError(f"rights must be a string of {LETTERS}, got {type(text).__name__}")
    bad = sorted(set(text) - set(LETTERS))
    if bad or len(set(text)) != len(text):
        raise RightsTextError(
            f"rights {text[:20]!r} must be letters of {LETTERS!r} (read, create, change, "
            "delete), each at most once"
        )
    return "".join(ch for ch in LETTERS if ch in text)


@dataclass(frozen=True, slots=True)
class Rights:
    """A set of rights on one object: some of ``r``, ``c``, ``u``, ``d``."""

    letters: frozenset[str] = frozenset()

    def has(self, letter: str) -> bool:
        """Whether the right ``letter`` is held."""
        return letter in self.letters

    def __or__(self, other: Rights) -> Rights:
        return Rights(self.letters | other.letters)

    @property
    def text(self) -> str:
        """The letters in canonical order (``""`` for none)."""
        return "".join(ch for ch in LETTERS if ch in self.letters)


NONE = Rights()
ALL = Rights(frozenset(LETTERS))


def grants_of(obj: Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """The ``permissions`` of a Person or group as key -> letters (malformed: none)."""
    raw = obj.get("permissions") if obj is not None else None
    out: dict[str, frozenset[str]] = {}
    if isinstance(raw, Mapping):
        for key, text in raw.items():
            if isinstance(key, str) and isinstance(text, str):
                out[key] = frozenset(text) & frozenset(LETTERS)
    return out


def _merge(into: dict[str, frozenset[str]], more: Mapping[str, frozenset[str]]) -> None:
    for key, letters in more.items():
        into[key] = into.get(key, frozenset()) | letters


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request, resolved: a Person, its state, and its combined grants."""

    dbid: int
    name: str
    enabled: bool
    admin: bool
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)


def group_dbids(person: Mapping[str, Any]) -> list[int]:
    """The dbids of the groups ``person`` names (malformed entries left out)."""
    raw = person.get("access_group_dbids")
    if not isinstance(raw, list):
        return []
    return [g for g in raw if isinstance(g, int) and not isinstance(g, bool)]


def principal(
    person: Mapping[str, Any],
    groups: Mapping[int, Mapping[str, Any]],
    *,
    assume_enabled: bool = False,
) -> Principal:
    """Resolve ``person`` with ``groups`` (AccessGroup objects by dbid; missing and
    disabled groups grant nothing). ``assume_enabled``: what it would hold once
    enabled (a disabled account's rights are what enabling it hands out)."""
    grants = grants_of(person)
    admin = False
    for dbid in group_dbids(person):
        group = groups.get(dbid)
        if group is None or group.get("state") != "enabled":
            continue
        admin = admin or group.get("is_administrator") is True
        _merge(grants, grants_of(group))
    enabled = assume_enabled or person.get("state") == "enabled"
    return Principal(
        dbid=int(person.get("dbid") or 0),
        name=str(person.get("name", "?")),
        enabled=enabled,
        admin=admin and enabled,
        grants=grants if enabled else {},
    )


def held(who: Principal, key: str) -> frozenset[str]:
    """The letters ``who`` holds for grant key ``key``: its ``"*"`` grant, plus the
    key's own (what it may pass on under that key)."""
    if not who.enabled:
        return frozenset()
    if who.admin:
        return frozenset(LETTERS)
    every = who.grants.get(EVERY_TYPE, frozenset())
    return every if key == EVERY_TYPE else every | who.grants.get(key, frozenset())


def rights_of(who: Principal, type_name: str, folder_dbid: Any = None) -> Rights:
    """``who``'s rights on an object of ``type_name`` in folder ``folder_dbid``."""
    if not who.enabled:
        return NONE
    if who.admin:
        return ALL
    letters = held(who, type_name)
    if isinstance(folder_dbid, int) and not isinstance(folder_dbid, bool):
        letters |= who.grants.get(f"{FOLDER_KEY}{folder_dbid}", frozenset())
    return Rights(letters)


def may_read_type(who: Principal, type_name: str) -> bool:
    """Whether ``who`` may read some objects of ``type_name`` (the type, or a folder)."""
    if rights_of(who, type_name).has("r"):
        return True
    return any(k.startswith(FOLDER_KEY) and "r" in v for k, v in who.grants.items())


def dominates(actor: Principal, target: Principal) -> bool:
    """Whether ``actor`` holds every right ``target`` holds (an administrator only by one)."""
    if actor.admin:
        return actor.enabled
    if target.admin:
        return False
    return all(letters <= held(actor, key) for key, letters in target.grants.items())


def deny(actor: Principal, letter: str, what: str) -> PermissionDeniedError:
    """The refusal naming the Person, the right and the object."""
    return PermissionDeniedError(f"person {actor.name!r} has no {NAMES[letter]} right on {what}")


def check_grant(actor: Principal, grants: Mapping[str, frozenset[str]], what: str) -> None:
    """Refuse a grant that gives letters ``actor`` does not hold for their key."""
    for key, letters in sorted(grants.items()):
        missing = letters - held(actor, key)
        if missing:
            letter = next(ch for ch in LETTERS if ch in missing)
            raise PermissionDeniedError(
                f"person {actor.name!r} cannot grant {NAMES[letter]} on {key!r} in {what}: "
                "it does not hold that right itself"
            )


def check_join(
    actor: Principal, joined: Iterable[int], groups: Mapping[int, Mapping[str, Any]], what: str
) -> None:
    """Refuse joining a group that grants more than ``actor`` holds (or an admin group)."""
    for dbid in joined:
        group = groups.get(dbid)
        if group is None:
            continue  # a dangling reference: the write is refused for it anyway
        if group.get("is_administrator") is True and not actor.admin:
            raise PermissionDeniedError(
                f"person {actor.name!r} cannot add {what} to administrator group "
                f"{group.get('name')!r}: only an administrator can"
            )
        check_grant(actor, grants_of(group), f"{what} joining group {group.get('name')!r}")


def _describe(type_name: str, obj: Mapping[str, Any] | None) -> str:
    if obj is None:
        return f"type {type_name}"
    return f"{type_name} {obj.get('dbid', '(new)')} ({str(obj.get('name', '?'))[:64]!r})"


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A write as the access rules see it.

    ``current`` is the stored object (update, delete); ``new`` the object as it
    would be (create, update); ``changed`` the fields an update names; for a
    Person, ``target`` is its principal before the write.
    """

    op: str
    type_name: str
    current: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    changed: frozenset[str] = frozenset()
    options_changed: bool = False
    protected: bool = False
    target: Principal | None = None


def check_write(
    actor: Principal, req: WriteRequest, groups: Mapping[int, Mapping[str, Any]]
) -> None:
    """Raise PermissionDeniedError unless ``actor`` may make the write ``req``."""
    if not actor.enabled:
        raise PermissionDeniedError(f"person {actor.name!r} is disabled")
    if actor.admin:
        return
    t = req.type_name
    own = t == "Person" and req.current is not None and req.current.get("dbid") == actor.dbid
    if own and req.op == "update" and req.changed == {"password"} and not req.options_changed:
        return  # a Person may change its own password only
    letter = OP_RIGHT[req.op]
    for obj in (req.current, req.new) if req.op == "update" else (req.current or req.new,):
        if obj is not None and not rights_of(actor, t, obj.get("folder_dbid")).has(letter):
            raise deny(actor, letter, _describe(t, obj))
    if req.protected:
        raise PermissionDeniedError(
            f"{_describe(t, req.current)} is one of this pair's own Configuration Server "
            "Applications: only an administrator may change or delete it"
        )
    what = _describe(t, req.new or req.current)
    if t == "AccessGroup" and any(
        o is not None and o.get("is_administrator") is True for o in (req.current, req.new)
    ):
        raise PermissionDeniedError(
            f"{what} is an administrator group: only an administrator may create, change "
            "or delete it"
        )
    if req.new is not None and t in ("Person", "AccessGroup"):
        # Enabling a disabled Person or group hands out all its grants at once.
        was_on = req.current is not None and req.current.get("state") == "enabled"
        before = grants_of(req.current) if was_on or req.new.get("state") != "enabled" else {}
        added = {k: v - before.get(k, frozenset()) for k, v in grants_of(req.new).items()}
        check_grant(actor, {k: v for k, v in added.items() if v}, what)
    if t == "Person":
        if req.new is not None:
            old = set(group_dbids(req.current)) if req.current is not None else set()
            check_join(actor, [g for g in group_dbids(req.new) if g not in old], groups, what)
        guarded = req.op == "delete" or bool(req.changed & GUARDED_PERSON_FIELDS)
        if req.target is not None and guarded and not dominates(actor, req.target):
            raise PermissionDeniedError(
                f"person {actor.name!r} cannot change the password, state, rights or groups "
                f"of {what}, or delete it: that Person holds rights {actor.name!r} does not"
            )
