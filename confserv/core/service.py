"""The configuration held in memory, the one write path, and change fan-out.

:class:`ConfigService` owns the in-memory copy every read is served from. All writes go
through :meth:`ConfigService.write`: validate against memory, commit in the database under
the epoch check, apply to memory, publish to subscribers, in that order and one at a time.
Backups and proxies feed changes they receive into :meth:`ConfigService.apply`, the same
code that applies local commits (and tells :class:`~.access_checks.AccessWatch`). No
sockets here. When memory must first catch up with the database around a commit is
decided by :class:`~confserv.core.commit_guard.CommitGuard`.
"""

from __future__ import annotations

import collections
import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import trio

from confserv.model.objects import (
    apply_delta,
    check_delta,
    check_filter,
    check_type,
    matches,
    new_object,
    public_view,
    references,
)
from confserv.store.base import Change, ConfigStore, Snapshot, Write
from confserv.wire.errors import (
    ApplyError,
    BadRequestError,
    ChangeGapError,
    ConstraintError,
    DatabaseMismatchError,
    FencedError,
    HistoryExpiredError,
    NotFoundError,
    ReadOnlyError,
    StaleEpochError,
    StaleMemoryError,
    UnavailableError,
)

from .access_checks import AccessWatch
from .commit_guard import Action, CatchUp, CommitGuard, Outcome, Retry, StopWrites
from .fanout import NotificationCache, Subscription
from .logins import login
from .object_size import DEFAULT_MAX_OBJECT_SIZE, check_write_size
from .password_checks import PasswordChecks, off_loop_if_hashing

Key = tuple[str, int]


class ConfigService:
    """Objects in memory, serial and epoch, writes and subscriptions (see module docstring).

    Args:
        store: the Configuration Database (None for a proxy).
        history_limit: the most changes one restore may return (``max-records``).
    """

    def __init__(self, store: ConfigStore | None, *, history_limit: int = 1000) -> None:
        self.store = store
        self.history_limit = history_limit
        #: ``max-object-size``: a write whose object or change encodes larger is refused.
        self.max_object_size = DEFAULT_MAX_OBJECT_SIZE
        self.epoch = 0
        self.last_serial = 0
        self.writable = False
        self._objects: dict[str, dict[int, dict[str, Any]]] = {}
        self._names: dict[str, dict[str, int]] = {}
        self._referrers: dict[Key, set[Key]] = {}
        self._subscriptions: set[Subscription] = set()
        self.notifications = NotificationCache()
        #: The latest changes applied, for restores without a database trip (a proxy has none).
        self._recent: collections.deque[Change] = collections.deque(maxlen=history_limit)
        self.write_lock = trio.Lock()
        self.passwords = PasswordChecks()
        self._commits = CommitGuard()
        self._applied = trio.Event()
        #: Why nothing is served (the database is not what was served), or None.
        self.halted: str | None = None
        #: The highest dbid ever seen per type, deleted objects included: a reload
        #: over a database that went back must not let it issue them again.
        self.max_dbids: dict[str, int] = {}
        #: Called with the reason when a change could not be applied and memory was reloaded.
        self.on_reload: Callable[[str], None] | None = None
        self.access = AccessWatch()  # ends the sessions of a disabled Person

    # -- loading --------------------------------------------------------------

    def load(self, snapshot: Snapshot, *, allow_older: bool = False) -> None:
        """Replace memory with ``snapshot`` (start-up or full reload; ``allow_older``:
        an operator's reload over a database that went back)."""
        if self.last_serial and snapshot.last_serial < self.last_serial and not allow_older:
            raise StaleEpochError(
                f"snapshot at serial {snapshot.last_serial} is older than memory "
                f"at {self.last_serial}"
            )
        self._objects = {}
        self._names = {}
        self._referrers = {}
        self._recent.clear()
        for obj in snapshot.objects:
            self._insert(obj)
        self.last_serial = snapshot.last_serial
        self._applied.set()
        self._applied = trio.Event()

    def _store(self) -> ConfigStore:
        if self.store is None:
            raise ReadOnlyError("this server has no database (proxy mode)")
        return self.store

    async def reload(self) -> None:
        """Load everything from the database."""
        self.load(await self._store().load())

    def halt(self, reason: str) -> bool:
        """Serve nothing and write nothing until an operator reload; False if already."""
        self.writable = False
        if self.halted is not None:
            return False
        self.halted = reason
        return True

    def _check_serving(self) -> None:
        if self.halted is not None:
            raise DatabaseMismatchError(
                f"this server serves nothing: {self.halted}; an operator must reload it "
                "from the database ('cfgctl reload')"
            )

    async def operator_reload(self) -> int:
        """Reload memory from the database even if it went back, so that nothing is
        served that the database does not hold; counters are first raised past what
        was served (serials, dbids and epochs are never issued twice), one serial
        more than served so every client's restore finds a gap and reloads too.
        Returns the serial memory is at."""
        store = self._store()
        await store.raise_counters(self.last_serial + 1, dict(self.max_dbids), self.epoch)
        self.load(await store.load(), allow_older=True)
        self.halted = None
        for sub in list(self._subscriptions):
            sub.overflowed = True  # their caches may hold what the database lost
            self.unsubscribe(sub)
        return self.last_serial

    def __len__(self) -> int:
        return sum(len(objs) for objs in self._objects.values())

    # -- reads ----------------------------------------------------------------

    def read(
        self, type_name: str, flt: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Objects of ``type_name`` matching the equality filter, as clients see them."""
        self._check_serving()
        check_type(type_name)
        flt = check_filter(type_name, flt)
        objs = self._objects.get(type_name, {})
        if "dbid" in flt:
            found = objs.get(flt["dbid"])
            candidates: Any = [found] if found is not None else []
        elif "name" in flt:
            dbid = self._names.get(type_name, {}).get(flt["name"])
            candidates = [objs[dbid]] if dbid is not None else []
        else:
            candidates = objs.values()
        for obj in candidates:
            if matches(obj, flt):
                yield public_view(obj)

    def get(self, type_name: str, dbid: int) -> dict[str, Any] | None:
        """The stored form of one object (with secrets), or None."""
        return self._objects.get(type_name, {}).get(dbid)

    def find(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The stored form of the object of that type and name, or None."""
        dbid = self._names.get(type_name, {}).get(name)
        return None if dbid is None else self.get(type_name, dbid)

    def all_objects(self) -> Iterator[dict[str, Any]]:
        """Every object in stored form (for snapshots to backups and proxies)."""
        for objs in self._objects.values():
            yield from objs.values()

    async def authenticate(self, user: str, password: str, *, source: str | None = None) -> bool:
        """Whether ``user`` (a Person's name or user_name) has ``password``; ``source``
        is the client's ``host:port``. Backs off, costs the same for unknown users and
        rehashes weak hashes (:func:`confserv.core.logins.login`)."""
        persons = self._objects.get("Person", {})
        return await login(self, self.passwords, persons, user, password, source, self._write)

    def log_auth_with(self, emit: Callable[..., object]) -> None:
        """Write the login back-off's and the rehash's events with ``emit``."""
        self.passwords.set_emit(emit)

    # -- writes ---------------------------------------------------------------

    async def create(self, type_name: str, data: Any) -> Change:
        """Create an object; returns the committed change (with its dbid and serial)."""
        check_type(type_name)
        obj = await off_loop_if_hashing(new_object, type_name, data)

        def prepare() -> Write:
            self._check_name_free(type_name, obj["name"], None)
            self._check_refs(obj)
            return Write("add", type_name, None, obj)

        return await self._write(prepare)

    async def update(self, type_name: str, dbid: Any, delta: Any, options: Any = None) -> Change:
        """Change some fields and/or options of an object."""
        check_type(type_name)
        fields, opts = await off_loop_if_hashing(check_delta, type_name, delta, options)
        if not fields and not opts:
            raise BadRequestError("an update must change at least one field or option")

        def prepare() -> Write:
            current = self._existing(type_name, dbid)
            obj = copy.deepcopy(current)
            apply_delta(obj, fields, opts)
            if obj["name"] != current["name"]:
                self._check_name_free(type_name, obj["name"], dbid)
            self._check_refs(obj)
            return Write("change", type_name, dbid, obj, {"delta": fields, "options": opts})

        return await self._write(prepare)

    async def delete(self, type_name: str, dbid: Any) -> Change:
        """Delete an object that nothing references."""
        check_type(type_name)

        def prepare() -> Write:
            current = self._existing(type_name, dbid)
            holders = self._referrers.get((type_name, dbid))
            if holders:
                held_by = ", ".join(f"{t} {d}" for t, d in sorted(holders)[:5])
                raise ConstraintError(
                    f"{type_name} {dbid} ({current['name']!r}) is referenced by {held_by}"
                )
            return Write("delete", type_name, dbid, None, {"name": current["name"]})

        return await self._write(prepare)

    async def _write(self, prepare: Callable[[], Write]) -> Change:
        """Validate against memory, commit; when the database turns out to be ahead of
        memory (StaleMemoryError), catch up and validate and commit once more."""
        async with self.write_lock:
            self._check_serving()
            self._commits.write()
            while True:
                try:
                    return await self._commit(check_write_size(prepare(), self.max_object_size))
                except StaleMemoryError:
                    actions = self._commits.stale_memory()
                    if Retry() not in actions:
                        raise
                    await self._carry_out(actions)

    async def _carry_out(self, actions: list[Action]) -> None:
        """Carry out the commit guard's actions; a failed catch-up is told, then raised."""
        for action in actions:
            if isinstance(action, CatchUp):
                try:
                    await self.catch_up()
                except BaseException:
                    self._commits.catch_up_failed()
                    raise
                self._commits.caught_up()
            elif isinstance(action, StopWrites):
                self.writable = False

    async def _commit(self, write: Write) -> Change:
        if not self.writable:
            raise ReadOnlyError("this server does not accept writes now")
        # A commit whose answer was lost may have landed: the guard says catch up
        # first, so memory and serials stay in step with the database.
        await self._carry_out(self._commits.before_commit())
        # Shielded: a requester that goes away (its link closed, its task
        # cancelled) must not leave a change committed in the database and
        # missing from memory; every later commit would then find a gap.
        # The store's own timeout bounds the wait.
        with trio.CancelScope(shield=True):
            self._commits.sending()
            try:
                change = await self._store().commit(self.epoch, self.last_serial, write)
            except FencedError:
                await self._carry_out(self._commits.ended(Outcome.FENCED))
                raise
            except StaleMemoryError:
                self._commits.ended(Outcome.STALE_MEMORY)
                raise  # refused: the database is ahead of memory, nothing committed
            except (ConstraintError, NotFoundError):
                self._commits.ended(Outcome.REFUSED)
                raise  # refused by the database: nothing committed
            except BaseException:
                # Unavailable, or anything unforeseen (a connection lost after
                # COMMIT was sent): it may have landed, catch up before the next.
                self._commits.ended(Outcome.UNKNOWN)
                raise
            self._commits.ended(Outcome.COMMITTED)
            try:
                self.apply(change)
            except (ChangeGapError, ApplyError):
                # Memory missed a change after all: take it from the History Log
                # (this one included) rather than refuse every write from now on.
                # Unreachable: the guard knows, and the next write catches up first.
                with contextlib.suppress(UnavailableError):
                    await self._carry_out(self._commits.apply_missed())
        return change

    def _existing(self, type_name: str, dbid: Any) -> dict[str, Any]:
        if not isinstance(dbid, int) or isinstance(dbid, bool):
            raise NotFoundError(f"{type_name} dbid must be an integer, got {dbid!r}")
        obj = self.get(type_name, dbid)
        if obj is None:
            raise NotFoundError(f"no {type_name} with dbid {dbid}")
        return obj

    def _check_name_free(self, type_name: str, name: str, dbid: int | None) -> None:
        other = self._names.get(type_name, {}).get(name)
        if other is not None and other != dbid:
            raise ConstraintError(f"a {type_name} named {name!r} exists already (dbid {other})")

    def _check_refs(self, obj: Mapping[str, Any]) -> None:
        for field_name, target, dbid in references(obj):
            if self.get(target, dbid) is None:
                raise ConstraintError(
                    f"{obj['type']}.{field_name} = {dbid}: no {target} with that dbid"
                )

    # -- applying changes -----------------------------------------------------

    def apply(self, change: Change) -> bool:
        """Apply a committed change to memory and publish it; False if already applied.

        Raises:
            ChangeGapError: the change is not the next serial.
            StaleEpochError: the change is from an older epoch than one applied.
        """
        if change.serial <= self.last_serial:
            return False
        if change.serial != self.last_serial + 1:
            raise ChangeGapError(self.last_serial + 1, change.serial)
        if change.epoch < self.epoch:
            raise StaleEpochError(
                f"change {change.serial} is from epoch {change.epoch}, "
                f"older than epoch {self.epoch}"
            )
        objs = self._objects.get(change.type, {})
        if change.op == "add":
            if change.dbid in objs:
                raise ApplyError(
                    f"serial {change.serial} adds {change.type} {change.dbid}, "
                    "which memory already has"
                )
            self._insert(copy.deepcopy(change.data))
        elif change.op == "change":
            obj = objs.get(change.dbid)
            if obj is None:
                raise ApplyError(
                    f"serial {change.serial} changes {change.type} {change.dbid}, "
                    "which memory does not have"
                )
            self._remove_indexes(obj)
            apply_delta(obj, change.data.get("delta", {}), change.data.get("options", {}))
            self._add_indexes(obj)
        else:
            obj = objs.pop(change.dbid, None)
            if obj is None:
                raise ApplyError(
                    f"serial {change.serial} deletes {change.type} {change.dbid}, "
                    "which memory does not have"
                )
            self._remove_indexes(obj)
        self.last_serial = change.serial
        self.epoch = max(self.epoch, change.epoch)
        self._recent.append(change)
        self._publish(change)
        self.access.applied(change)
        self._applied.set()
        self._applied = trio.Event()
        return True

    def _insert(self, obj: dict[str, Any]) -> None:
        self._objects.setdefault(obj["type"], {})[obj["dbid"]] = obj
        if obj["dbid"] > self.max_dbids.get(obj["type"], 0):
            self.max_dbids[obj["type"]] = obj["dbid"]
        self._add_indexes(obj)

    def _add_indexes(self, obj: dict[str, Any]) -> None:
        key = (obj["type"], obj["dbid"])
        self._names.setdefault(obj["type"], {})[obj["name"]] = obj["dbid"]
        for _field, target, dbid in references(obj):
            self._referrers.setdefault((target, dbid), set()).add(key)

    def _remove_indexes(self, obj: dict[str, Any]) -> None:
        key = (obj["type"], obj["dbid"])
        names = self._names.get(obj["type"], {})
        if names.get(obj["name"]) == obj["dbid"]:
            del names[obj["name"]]
        for _field, target, dbid in references(obj):
            holders = self._referrers.get((target, dbid))
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._referrers[(target, dbid)]

    # -- subscriptions and history --------------------------------------------

    def subscribe(self) -> Subscription:
        """A new subscription (empty filter: add types or objects to it)."""
        sub = Subscription()
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub`` and close its queue."""
        self._subscriptions.discard(sub)
        sub.send.close()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are live."""
        return len(self._subscriptions)

    def _publish(self, change: Change) -> None:
        out = self.notifications.outgoing(change)
        for sub in tuple(self._subscriptions):
            if sub.wants(change) and not sub.offer(out):
                self.unsubscribe(sub)

    async def wait_serial(self, serial: int) -> None:
        """Wait until changes up to ``serial`` are applied to memory."""
        while self.last_serial < serial:
            await self._applied.wait()

    async def catch_up(self) -> int:
        """Apply every committed change the database has beyond memory.

        Used by a backup that found a gap and by a server about to become
        primary. Reloads everything when the history no longer reaches back.
        Returns how many changes were applied (-1 after a full reload).
        """
        changes = await self._store().history_since(self.last_serial, 2**62)
        if changes is None:
            await self.reload()
            return -1
        applied = 0
        for change in changes:
            try:
                if self.apply(change):
                    applied += 1
            except ApplyError as exc:
                await self.reload_after(exc)
                return -1
        return applied

    async def reload_after(self, exc: Exception) -> None:
        """A change could not be applied: memory is not the database's; reload it
        (logged through ``on_reload``) instead of wedging."""
        if self.on_reload is not None:
            self.on_reload(str(exc))
        snapshot = await self._store().load()
        self.load(snapshot, allow_older=True)

    async def history_since(self, serial: int) -> list[Change]:
        """Changes after ``serial`` for a restoring client.

        Raises:
            HistoryExpiredError: the history does not reach back that far, or
                more than ``max-records`` changes were missed: reload.
        """
        self._check_serving()
        if serial == self.last_serial:
            return []
        if serial > self.last_serial:
            raise HistoryExpiredError(
                f"serial {serial} is ahead of this server's {self.last_serial}: reload"
            )
        if self.last_serial - serial > self.history_limit:
            changes = None
        elif self._recent and self._recent[0].serial <= serial + 1:
            changes = [c for c in self._recent if c.serial > serial]  # from memory
        elif self.store is not None:
            changes = await self.store.history_since(serial, self.history_limit)
        else:
            changes = None
        if changes is None:
            raise HistoryExpiredError(
                f"History Log has expired: changes after serial {serial} are no longer all "
                f"kept (max-records {self.history_limit}); reload the configuration"
            )
        return [c for c in changes if c.serial <= self.last_serial]
