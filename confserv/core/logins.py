"""A client's login: back-off, the same cost for unknown users, rehash of weak hashes.

Called by :meth:`confserv.core.service.ConfigService.authenticate` with the
service's Persons and its write path. The order, for every attempt:

1. while the source or the user is blocked (:mod:`confserv.core.auth_backoff`),
   refuse unchecked (:class:`~confserv.core.auth_throttle.LoginThrottledError`);
2. check the password; an unknown, disabled or password-less user is checked
   against a dummy hash of the current cost, so both take one scrypt;
3. a failure counts against the source and the user; a success clears the user's
   count (a source's decays: a correct password for one account does not
   reopen guessing of the others from the same address);
4. a hash weaker than the current cost is rehashed and written as a committed
   change (the backup, the History Log and the serial follow).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import trio

from confserv.logs import events
from confserv.model.objects import STORED_SECRET
from confserv.model.passwords import cost_of, default_cost, hash_password, needs_rehash
from confserv.store.base import Change, Write
from confserv.wire.errors import ConfServError

from .auth_throttle import source_of
from .password_checks import PasswordChangedError, PasswordChecks, hash_limiter

WriteFn = Callable[[Callable[[], Write]], Awaitable[Change]]


class LoginService(Protocol):
    """What a login needs of the service."""

    writable: bool
    halted: str | None

    def find(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The stored Person of that name, or None."""

    def get(self, type_name: str, dbid: int) -> dict[str, Any] | None:
        """The stored object, or None."""


async def login(
    svc: LoginService,
    checks: PasswordChecks,
    persons: Mapping[int, Mapping[str, Any]],
    user: str,
    password: str,
    source: str | None,
    write: WriteFn,
) -> bool:
    """Whether ``user`` (a Person's name or user_name) has ``password`` (module docstring)."""
    person: Mapping[str, Any] | None = svc.find("Person", user)
    if person is None:
        person = next((p for p in persons.values() if p.get("user_name") == user), None)
    name = str(person["name"]) if person is not None else user
    keys = [f"user {name[:64]!r}"]
    if source is not None:
        keys.insert(0, f"source {source_of(source)[:64]}")
    checks.throttle.check(*keys)
    stored = ""
    if person is not None and person.get("state") == "enabled":
        stored = str(person.get(STORED_SECRET) or "")
    if not await checks.check(stored, password):
        checks.throttle.failed(*keys)
        return False
    checks.throttle.succeeded(keys[-1])
    if person is not None and needs_rehash(stored):
        await rehash(svc, checks, int(person["dbid"]), name, stored, password, write)
    return True


async def rehash(
    svc: LoginService,
    checks: PasswordChecks,
    dbid: int,
    name: str,
    stored: str,
    password: str,
    write: WriteFn,
) -> None:
    """Store the just-verified password at the current cost through ``write`` (the
    normal write path). Skipped when the server does not write now, or when the hash
    changed meanwhile (a new password wins); a failure is logged, the login stands."""
    if dbid in checks.rehashing or not svc.writable or svc.halted is not None:
        return
    checks.rehashing.add(dbid)
    try:
        cost = default_cost()
        new = await trio.to_thread.run_sync(hash_password, password, cost, limiter=hash_limiter())

        def prepare() -> Write:
            current = svc.get("Person", dbid)
            if current is None or current.get(STORED_SECRET) != stored:
                raise PasswordChangedError("the password was changed meanwhile")
            obj = copy.deepcopy(current)
            obj[STORED_SECRET] = new
            return Write(
                "change", "Person", dbid, obj, {"delta": {STORED_SECRET: new}, "options": {}}
            )

        await write(prepare)
        checks.log(events.PASSWORD_REHASHED, person=name, old=str(cost_of(stored)), new=str(cost))
    except ConfServError as exc:
        checks.log(events.PASSWORD_REHASH_FAILED, person=name, reason=str(exc))
    finally:
        checks.rehashing.discard(dbid)
