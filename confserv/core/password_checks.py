"""Password checks off the trio loop: scrypt is slow, and a reconnect storm repeats it."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import trio

from confserv.model.passwords import verify_password


class PasswordChecks:
    """Password checks with a cache of the ones that succeeded, and one check at a time
    for the same (hash, password): scrypt is slow, a reconnect storm repeats them.

    The cache holds an HMAC of the password under a per-process key, never the
    password; a changed hash (a new password) is another key.
    """

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._ok: set[tuple[str, bytes]] = set()
        self._running: dict[tuple[str, bytes], trio.Event] = {}

    async def check(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches the stored hash (False for an empty hash)."""
        if not stored:
            return False
        token = (stored, hmac.new(self._key, password.encode(), hashlib.sha256).digest())
        while (running := self._running.get(token)) is not None:
            await running.wait()  # the same check is under way: share its result
        if token in self._ok:
            return True
        self._running[token] = done = trio.Event()
        try:
            ok = await trio.to_thread.run_sync(verify_password, password, stored)
        finally:
            del self._running[token]
            done.set()
        if ok:
            self._ok.add(token)
        return ok


async def off_loop_if_hashing(fn: Any, type_name: str, *args: Any) -> Any:
    """Validate in a worker thread when a password must be hashed (scrypt is slow)."""
    if any(isinstance(a, Mapping) and "password" in a for a in args):
        return await trio.to_thread.run_sync(fn, type_name, *args)
    return fn(type_name, *args)
