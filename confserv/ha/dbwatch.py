"""Is the database still the one this server has served? The check, and the operator reload.

A server remembers the identity (uuid) of the database it loaded and the
serial it has served. Every ``lease-renew`` seconds it reads the database's
identity again (read-only). When the database is another one (a file
replaced, a dump of another installation), is behind what was served (an
older dump restored), or is gone (a SQLite file deleted), the server stops
writes, serves nothing (clients get ``database-mismatch``), and raises alarm
20170, shown by ``status`` and ``scs status``, until an operator reloads it
from the database (``cfgctl reload``). A reload raises every counter past what
was served, so serials and dbids are never issued twice.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from confserv.core.runtime import Runtime
from confserv.logs import events
from confserv.store.base import ConfigStore, Identity
from confserv.store.sqlite import SqliteStore
from confserv.wire.errors import DatabaseIdentityError, RequestError, UnavailableError


class DatabaseWatch:
    """The check of one server's database (see module docstring)."""

    def __init__(
        self,
        rt: Runtime,
        store: ConfigStore,
        identity: Identity,
        can_write: Callable[[], bool] = lambda: False,
    ) -> None:
        self.rt = rt
        self.store = store
        self.identity = identity
        self.can_write = can_write  # the role machine's word: may writes resume?

    async def check(self) -> str | None:
        """Check once; returns why the database is not the one served, or None."""
        svc = self.rt.service
        where = self.store.where
        # What was served, taken *before* the database is read: a commit landing
        # during the read is in the database first and in memory after, so memory
        # read afterwards would make the database look behind (found by make chaos
        # on PostgreSQL: "at serial 112, behind serial 113" in the same millisecond).
        served, dbids = svc.last_serial, dict(svc.max_dbids)
        reason: str | None = None
        if isinstance(self.store, SqliteStore):
            changed = self.store.file_changed()
            if changed is not None:
                try:
                    await self.store.reopen()
                except (DatabaseIdentityError, UnavailableError) as exc:
                    reason = f"{changed} ({exc})"
        if reason is None:
            try:
                now = await self.store.identity()
            except DatabaseIdentityError as exc:
                reason = str(exc)
            except RequestError:
                return None  # unreachable: the lease logic deals with that
            else:
                reason = self._compare(now, where, served, dbids)
        if reason is not None and svc.halt(reason):
            self.rt.log.emit(events.DB_MISMATCH, reason=reason)
            self.rt.raise_alarm(events.DB_MISMATCH.id, reason)
        return reason

    def _compare(self, now: Identity, where: str, served: int, dbids: dict[str, int]) -> str | None:
        if now.uuid != self.identity.uuid:
            return (
                f"{where} is another Configuration Database (uuid {now.uuid}; "
                f"this server loaded {self.identity.uuid})"
            )
        if now.last_serial < served:
            return (
                f"{where} is at serial {now.last_serial}, behind serial {served} "
                "that this server has served (an older copy restored?)"
            )
        for type_name, dbid in dbids.items():
            if now.dbids.get(type_name, 0) < dbid:
                return (
                    f"{where} would issue {type_name} dbid {now.dbids.get(type_name, 0) + 1} "
                    f"again (this server has seen {dbid})"
                )
        return None

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds, until cancelled."""
        while True:
            await trio.sleep(interval)
            await self.check()

    async def reload(self, who: str) -> dict[str, object]:
        """The operator's reload: memory from the database, counters past what was
        served, the alarm cleared; the database's identity is taken as the new one."""
        svc = self.rt.service
        async with svc.write_lock:
            self.identity = await self.store.identity()
            serial = await svc.operator_reload()
        self.rt.clear_alarm(events.DB_MISMATCH.id)
        self.rt.log.emit(events.RELOADED, who=who, count=len(svc), serial=serial)
        svc.writable = self.can_write()
        return {"serial": serial, "objects": len(svc)}
