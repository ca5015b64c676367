"""Password checks off the trio loop: scrypt is slow, and a reconnect storm repeats it."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import trio

from confserv.logs.catalog import LogEvent
from confserv.model.passwords import default_cost, dummy_hash, verify_password
from confserv.wire.errors import ConfServError

from .auth_backoff import BackoffPolicy
from .auth_throttle import AuthThrottle, Emit

#: Hashes running at once, at most: each takes a worker thread and, at OWASP's
#: cost, 128 MiB, so a guessing flood can take neither every thread nor GiBs.
MAX_CONCURRENT_HASHES = 2


class PasswordChangedError(ConfServError):
    """A rehash found the stored hash changed since it was verified: not written."""


_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("hash-limiter")


def hash_limiter() -> trio.CapacityLimiter:
    """The limiter every scrypt of this trio run goes through (logins, rehashes and
    writes that set a password): :data:`MAX_CONCURRENT_HASHES` at once."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
        _LIMITER.set(limiter)
        return limiter


#: Client logins: a user is blocked after 5 failures within a minute, a source
#: address after 10 (several people may share one address); 1 s doubling to 60 s,
#: forgotten after 10 quiet minutes.
LOGIN_POLICIES = {
    "user": BackoffPolicy(threshold=5),
    "source": BackoffPolicy(threshold=10),
}

#: Successful checks remembered, at most (then the memory starts afresh).
_MAX_REMEMBERED = 10_000


class PasswordChecks:
    """Password checks with a cache of the ones that succeeded, and one check at a time
    for the same (hash, password): scrypt is slow, a reconnect storm repeats them.

    The cache holds an HMAC of the password under a per-process key, never the
    password; a changed hash (a new password) is another key. At most
    :data:`MAX_CONCURRENT_HASHES` hashes run at once in the whole run (in worker
    threads, :func:`hash_limiter`); the others wait.
    """

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._ok: set[tuple[str, bytes]] = set()
        self._running: dict[tuple[str, bytes], trio.Event] = {}
        #: scrypt runs so far (tests count them).
        self.hashes = 0
        #: Failed logins back off per source and per user.
        self.throttle = AuthThrottle("login", kinds=LOGIN_POLICIES)
        #: Persons whose password is being rehashed now.
        self.rehashing: set[int] = set()
        #: Where events are written (the server sets it; None: nowhere).
        self.emit: Emit | None = None

    def set_emit(self, emit: Emit | None) -> None:
        """Write this object's events (back-off, rehash) with ``emit``."""
        self.emit = emit
        self.throttle.emit = emit

    def log(self, event: LogEvent, **fields: object) -> None:
        """Write ``event`` if a log is set."""
        if self.emit is not None:
            self.emit(event, **fields)

    async def _verify(self, password: str, stored: str | None) -> bool:
        """scrypt in a worker thread; ``stored`` None: against the dummy hash (made in
        the thread the first time, so never on the loop)."""
        self.hashes += 1
        cost = default_cost()

        def run() -> bool:
            return verify_password(password, dummy_hash(cost) if stored is None else stored)

        return await trio.to_thread.run_sync(run, limiter=hash_limiter())

    async def check(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches the stored hash. An empty hash (no such user,
        no password) is checked against a dummy hash of the current cost: False,
        in the time a real check takes."""
        if not stored:
            await self._verify(password, None)
            return False
        token = (stored, hmac.new(self._key, password.encode(), hashlib.sha256).digest())
        while (running := self._running.get(token)) is not None:
            await running.wait()  # the same check is under way: share its result
        if token in self._ok:
            return True
        self._running[token] = done = trio.Event()
        try:
            ok = await self._verify(password, stored)
        finally:
            del self._running[token]
            done.set()
        if ok:
            if len(self._ok) >= _MAX_REMEMBERED:
                self._ok.clear()
            self._ok.add(token)
        return ok


async def off_loop_if_hashing(fn: Any, type_name: str, *args: Any) -> Any:
    """Validate in a worker thread when a password must be hashed (scrypt is slow)."""
    if any(isinstance(a, Mapping) and "password" in a for a in args):
        return await trio.to_thread.run_sync(fn, type_name, *args, limiter=hash_limiter())
    return fn(type_name, *args)
