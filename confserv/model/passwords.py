"""Password hashing for Person objects: scrypt from the standard library.

Stored form: ``scrypt$n$r$p$salt_hex$hash_hex``: every hash carries its own
parameters, so verification always uses the hash's own cost, whatever the
installation's cost is now. The clear password is never stored or sent back to
a client.

The cost of new hashes (:func:`default_cost`) is OWASP's current
recommendation for scrypt, N=2^17, r=8, p=1 (about 0.45 s and 128 MiB here),
unless the environment variable ``CONFSERV_PASSWORD_COST`` (or ``cfgctl init
--password-cost``) names another one: ``owasp``, or ``n=2^16,r=8,p=2`` (r and p
default to 8 and 1). A login whose stored hash is weaker than the current cost
is rehashed (:func:`needs_rehash`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from dataclasses import dataclass

#: The environment variable naming the cost of new hashes.
COST_ENV = "CONFSERV_PASSWORD_COST"

#: Upper bounds on the parameters, for a stored hash as for a chosen cost: a broken
#: or hostile stored value must not make a check allocate GiBs. There is no lower
#: bound beyond scrypt's own (n >= 2): test suites and simulations use the cheapest
#: cost on purpose, and their stored hashes must verify.
_MAX_LOG_N, _MAX_R, _MAX_P = 20, 32, 16
_MAX_MEMORY = 1 << 30


class PasswordCostError(ValueError):
    """A password cost that is not understood or is outside the bounds."""


@dataclass(frozen=True, slots=True)
class PasswordCost:
    """scrypt's parameters: ``n`` (CPU/memory cost, a power of 2), ``r`` and ``p``."""

    n: int
    r: int = 8
    p: int = 1

    @property
    def memory(self) -> int:
        """The bytes one hash needs (what OpenSSL checks against ``maxmem``)."""
        return 128 * self.r * (self.n + self.p + 2)

    def check(self) -> PasswordCost:
        """Self, or PasswordCostError naming the parameter out of bounds."""
        if self.n < 2 or self.n & (self.n - 1):
            raise PasswordCostError(f"n={self.n} is not a power of 2 (at least 2)")
        if self.n > 1 << _MAX_LOG_N:
            raise PasswordCostError(f"n={self.n} is above 2^{_MAX_LOG_N}")
        if not 1 <= self.r <= _MAX_R or not 1 <= self.p <= _MAX_P:
            raise PasswordCostError(f"r={self.r}, p={self.p}: r must be 1-32 and p 1-16")
        if self.memory > _MAX_MEMORY:
            raise PasswordCostError(f"{self} needs more than 1 GiB")
        return self

    def weaker_than(self, other: PasswordCost) -> bool:
        """Whether ``other`` asks for more memory (n*r) or more work (n*r*p)."""
        return self.n * self.r < other.n * other.r or (
            self.n * self.r * self.p < other.n * other.r * other.p
        )

    def __str__(self) -> str:
        return f"n=2^{self.n.bit_length() - 1},r={self.r},p={self.p}"


#: OWASP's current recommendation (Password Storage Cheat Sheet).
OWASP = PasswordCost(2**17, 8, 1)

_chosen: PasswordCost | None = None


def parse_cost(text: str) -> PasswordCost:
    """``owasp`` or ``n=2^17,r=8,p=1`` (``n=131072`` too; r and p optional)."""
    text = text.strip().lower()
    if text == "owasp":
        return OWASP
    values: dict[str, int] = {}
    try:
        for part in text.split(","):
            key, _, value = part.strip().partition("=")
            if key not in ("n", "r", "p") or key in values or not value:
                raise PasswordCostError(f"{part.strip()!r}")
            base, caret, power = value.partition("^")
            values[key] = int(base) ** int(power) if caret else int(value)
    except (PasswordCostError, ValueError, OverflowError):
        raise PasswordCostError(
            f"password cost {text!r} is not 'owasp' or like 'n=2^17,r=8,p=1'"
        ) from None
    if "n" not in values:
        raise PasswordCostError(f"password cost {text!r} has no n")
    return PasswordCost(values["n"], values.get("r", 8), values.get("p", 1)).check()


def set_default_cost(cost: PasswordCost | None) -> None:
    """Use ``cost`` for new hashes in this process (None: back to the environment's)."""
    global _chosen
    _chosen = None if cost is None else cost.check()


def default_cost() -> PasswordCost:
    """The cost of new hashes: the one set, else ``CONFSERV_PASSWORD_COST``, else OWASP's.

    An unreadable ``CONFSERV_PASSWORD_COST`` gives OWASP's (the safe side);
    ``cfgctl init`` refuses it with one line.
    """
    if _chosen is not None:
        return _chosen
    text = os.environ.get(COST_ENV)
    if not text:
        return OWASP
    try:
        return _parse_cached(text)
    except PasswordCostError:
        return OWASP


@functools.lru_cache(maxsize=8)
def _parse_cached(text: str) -> PasswordCost:
    return parse_cost(text)


def _scrypt(password: str, salt: bytes, cost: PasswordCost) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.memory + (1 << 16),
    )


def hash_password(password: str, cost: PasswordCost | None = None) -> str:
    """Return the stored form of ``password`` with a fresh random salt."""
    cost = (cost or default_cost()).check()
    salt = os.urandom(16)
    digest = _scrypt(password, salt, cost)
    return f"scrypt${cost.n}${cost.r}${cost.p}${salt.hex()}${digest.hex()}"


def cost_of(stored: str) -> PasswordCost | None:
    """The parameters of a stored hash (None when it is not one this module made)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        return PasswordCost(int(parts[1]), int(parts[2]), int(parts[3])).check()
    except (ValueError, PasswordCostError):
        return None


def needs_rehash(stored: str, target: PasswordCost | None = None) -> bool:
    """Whether a stored hash (that just verified) is weaker than the cost of new hashes."""
    cost = cost_of(stored)
    return cost is not None and cost.weaker_than(target or default_cost())


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored form (constant-time compare)."""
    cost = cost_of(stored)
    if cost is None:
        return False
    try:
        got = _scrypt(password, bytes.fromhex(stored.split("$")[4]), cost)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), stored.split("$")[5])


@functools.lru_cache(maxsize=4)
def dummy_hash(cost: PasswordCost) -> str:
    """A hash of a random password at ``cost``: checking an unknown user against it
    costs what checking a known one does, so the answer's time tells nothing."""
    return hash_password(os.urandom(16).hex(), cost)
