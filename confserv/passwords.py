"""Password hashing for Person objects: scrypt from the standard library.

Stored form: ``scrypt$n$r$p$salt_hex$hash_hex``. The clear password is never
stored or sent back to a client.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import trio

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """Return the stored form of ``password`` with a fresh random salt."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored form (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


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
