"""The PostgreSQL servers a database section lists: ``host = a:5432, b:5432``.

A replicated Configuration Database (a primary and its standbys, e.g. managed
by Patroni) is listed as all of its servers; the Configuration Server
connects to whichever accepts writes (asyncpg's ``target_session_attrs =
read-write``) and follows it when the database fails over. Each entry is
``host`` or ``host:port`` (an IPv6 address in brackets, ``[::1]:5432``, or
bare without a port); an entry without a port takes the section's ``port``,
else 5432. One host (the only form before lists) reads as it always did.

Pure: :func:`parse_db_hosts` turns the option's text into addresses or
raises :class:`HostListError` with the reason, which the settings loader
puts on one line naming the option.
"""

from __future__ import annotations

import ipaddress

__all__ = ["DEFAULT_PG_PORT", "MAX_DB_HOSTS", "HostListError", "parse_db_hosts"]

#: PostgreSQL's port when neither the entry nor ``port`` gives one.
DEFAULT_PG_PORT = 5432
#: The most servers one section may list (a primary and its standbys).
MAX_DB_HOSTS = 16

_HOW = "list the PostgreSQL servers as host:port, separated by commas"


class HostListError(ValueError):
    """The ``host`` (or ``dbserver``) option is not a list of host or host:port."""


def _shown(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _entry(item: str, port: int | None) -> tuple[str, int]:
    """One ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or bare ``v6``."""
    default = port or DEFAULT_PG_PORT
    if not item:
        raise HostListError(f"an empty entry; {_HOW}")
    if any(c.isspace() for c in item) or "/" in item or "@" in item:
        raise HostListError(f"{_shown(item)} is not a host or host:port; {_HOW}")
    if item.startswith("["):
        inside, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise HostListError(f"{_shown(item)} is not [IPv6 address]:port; {_HOW}")
        host, port_text = inside, rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise HostListError(f"{_shown(item)}: {host!r} is not an IPv6 address") from None
    elif item.count(":") > 1:  # a bare IPv6 address: no port
        try:
            ipaddress.IPv6Address(item)
        except ValueError:
            raise HostListError(
                f"{_shown(item)} is not a host or host:port (write IPv6 as [address]:port); {_HOW}"
            ) from None
        host, port_text = item, None
    else:
        host, colon, rest = item.partition(":")
        port_text = rest if colon else None
    if not host:
        raise HostListError(f"{_shown(item)} has no host; {_HOW}")
    if port_text is None:
        return host, default
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise HostListError(f"{_shown(item)}: {_shown(port_text)} is not a port (1 to 65535)")
    number = int(port_text)
    if not 1 <= number <= 65535:
        raise HostListError(f"{_shown(item)}: {_shown(port_text)} is not a port (1 to 65535)")
    return host, number


def parse_db_hosts(text: str, port: int | None = None) -> tuple[tuple[str, int], ...]:
    """The ``(host, port)`` of each server ``text`` lists, in order (``port``: the
    section's, for the entries without one). Raises :class:`HostListError`."""
    items = [part.strip() for part in text.split(",")]
    if len(items) > MAX_DB_HOSTS:
        raise HostListError(f"lists {len(items)} servers; at most {MAX_DB_HOSTS}")
    addresses: list[tuple[str, int]] = []
    for item in items:
        address = _entry(item, port)
        if address in addresses:
            raise HostListError(f"{_shown(item)} is listed twice")
        addresses.append(address)
    return tuple(addresses)
