"""Who may be a master on a Configuration Database: the pair as the database defines it.

As in the seed, pair membership comes from the Application objects, not from a
file: the primary's Application names its backup (``backup_server_dbid``).
A master whose Application (the section named by ``-s``) is neither that
primary nor that backup refuses to start. A database may hold one pair: two
pairs on one database would share one lease and fight over it.

Pure: :func:`resolve_membership` takes the Application objects and returns a
:class:`Membership` or raises :class:`~confserv.wire.errors.MembershipError` with
one line naming the object and what to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confserv.wire.errors import MembershipError

CONFIG_SERVER = "ConfigServer"


@dataclass(frozen=True, slots=True)
class Membership:
    """This server's place in the database's pair.

    Attributes:
        app: this server's Application name (its section).
        primary: the pair's primary-configured Application (names the backup).
        backup: the backup Application, or None for a server without one.
    """

    app: str
    primary: str
    backup: str | None

    @property
    def pair(self) -> str:
        """The pair's name: its primary Application's."""
        return self.primary

    @property
    def peer(self) -> str | None:
        """The other member, if any."""
        return self.backup if self.app == self.primary else self.primary


def resolve_membership(
    section: str, applications: Iterable[Mapping[str, Any]], pair_option: str | None = None
) -> Membership:
    """The pair ``section`` belongs to, by the Application objects.

    Raises:
        MembershipError: ``section`` names no Configuration Server Application, or
            one outside the database's pair, or the objects link inconsistently,
            or ``pair_option`` (the old ``pair`` line) disagrees with them.
    """
    apps = list(applications)
    by_dbid = {int(a["dbid"]): a for a in apps}
    me = next((a for a in apps if a.get("name") == section), None)
    if me is None:
        raise MembershipError(
            f"no Application {section!r} in the Configuration Database: -s must name the "
            "server's Application object (create it with 'cfgctl init', or fix -s)"
        )
    if me.get("app_type") != CONFIG_SERVER:
        raise MembershipError(
            f"Application {section!r} is of type {me.get('app_type')!r}, not {CONFIG_SERVER}: "
            "-s must name a Configuration Server's Application"
        )
    servers = [a for a in apps if a.get("app_type") == CONFIG_SERVER]
    pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for app in servers:
        backup_dbid = app.get("backup_server_dbid")
        if not backup_dbid:
            continue
        backup = by_dbid.get(int(backup_dbid))
        if backup is None or backup.get("app_type") != CONFIG_SERVER:
            raise MembershipError(
                f"Application {app['name']!r} names backup_server_dbid {backup_dbid}, which is "
                f"not a {CONFIG_SERVER} Application: fix its backup_server_dbid"
            )
        if backup is app:
            raise MembershipError(
                f"Application {app['name']!r} names itself as its backup: fix backup_server_dbid"
            )
        pairs.append((app, backup))
    backups = [b["name"] for _p, b in pairs]
    for name in set(backups):
        named_by = sorted(p["name"] for p, b in pairs if b["name"] == name)
        if len(named_by) > 1:
            raise MembershipError(
                f"Applications {' and '.join(repr(n) for n in named_by)} both name {name!r} as "
                "their backup: one database has one pair (clear backup_server_dbid on one)"
            )
    chained = [p["name"] for p, _b in pairs if p["name"] in backups]
    if chained:
        raise MembershipError(
            f"Application {chained[0]!r} is a backup and names a backup of its own: "
            "clear its backup_server_dbid"
        )
    if len(pairs) > 1:
        shown = " and ".join(f"{p['name']!r}/{b['name']!r}" for p, b in pairs[:2])
        raise MembershipError(
            f"the Configuration Database links two pairs ({shown}); one database has one "
            "pair and one lease: clear backup_server_dbid on all but one primary"
        )
    if pairs:
        primary, backup = pairs[0]
        membership = Membership(section, str(primary["name"]), str(backup["name"]))
        if section not in (membership.primary, membership.backup):
            raise MembershipError(
                f"Application {section!r} is neither the primary {membership.primary!r} nor "
                f"its backup {membership.backup!r} in this Configuration Database: "
                "run it on its own database, or make it the pair's backup "
                f"(backup_server_dbid of {membership.primary!r})"
            )
    else:
        membership = Membership(section, section, None)
    if pair_option is not None and pair_option != membership.pair:
        raise MembershipError(
            f"the pair line says {pair_option!r}, but in the Configuration Database the pair "
            f"is {membership.primary!r}"
            + (f" with backup {membership.backup!r}" if membership.backup else "")
            + ": remove the pair line (membership comes from the database)"
        )
    return membership
