"""Several supervisors for one installation: ``[scs] database`` and the supervisor lease.

With ``database = <section>`` in ``[scs]``, the supervisor takes part in the
supervisor-lease election (:mod:`scs.election`) on that Configuration
Database: the ``cfg_lease`` row ``supervisor``, with its own epoch, beside the
servers' own lease. Run the same ``scs.conf`` on two or more hosts (each
``scs --name`` distinct): one is active and acts, the others are standby and
watch. The database section has the keys of ``confserv.conf``'s (``dbengine``,
``dbname``, ``host``, ...), and must be the database the pairs use::

    [scs]
    database = confdb
    supervisor-lease-ttl = 6       # seconds; the active stops acting before it ends
    supervisor-lease-renew = 2     # default ttl / 3
    supervisor-lease-retry = 1     # a standby's look at the lease; default ttl / 6
    on-stop = leave-running        # default with a database: a standby takes over

    [confdb]
    dbengine = postgre
    host = db1:5432, db2:5432
    dbname = config
    username = cfg
    password = ...

Without ``database`` there is no election: one supervisor, as before, whose
commands carry no supervisor epoch (run only one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from addp.optionspec import OptionSpec, OptionTable
from confserv.config.settings import DatabaseSettings, Section, parse_database

from .election import Election, ElectionSettingsError

#: Options of ``[scs]`` this module reads.
REDUNDANCY_TABLE = OptionTable.of(
    OptionSpec(
        name="database",
        kind="section",
        meaning="A section of `scs.conf` with the Configuration Database of the supervisor "
        "lease: the keys of `confserv.conf`'s database section, and the database the pairs "
        "use (their servers seed their supervisor fence from its lease row); that section "
        "is not a server. With it the supervisors running this file elect one active; "
        "without it there is one supervisor and no election.",
    ),
    OptionSpec(
        name="supervisor-lease-ttl",
        kind="seconds",
        default="6",
        low=0.2,
        high=3600.0,
        meaning="How long a take or renewal holds the lease. A standby takes over within "
        "about ttl + retry of the active's death or isolation; the active stops acting "
        "before it can run out. Only with `database`.",
    ),
    OptionSpec(
        name="supervisor-lease-renew",
        kind="seconds",
        shown="ttl / 3",
        low=0.0,
        high=3600.0,
        above_low=True,
        meaning="Seconds between the active's renewals; with the margin (min(ttl / 4, "
        "max(renew / 2, 0.05))) it must stay below the ttl.",
    ),
    OptionSpec(
        name="supervisor-lease-retry",
        kind="seconds",
        shown="ttl / 6",
        low=0.0,
        high=3600.0,
        above_low=True,
        meaning="Seconds between a standby's looks at the lease.",
    ),
    OptionSpec(
        name="on-stop",
        kind="choice",
        shown="`leave-running` with `database`, else `stop-servers`",
        choices=("stop-servers", "leave-running"),
        meaning="What SIGINT/SIGTERM of an active supervisor does with the servers: stop "
        "them all (killed after their `stop-timeout`), or leave them running and give the "
        "lease up, so that a standby takes over at once. A standby never stops anything.",
    ),
)
REDUNDANCY_OPTIONS: frozenset[str] = REDUNDANCY_TABLE.names

#: What ``scs`` does with the servers when it is stopped (SIGINT, SIGTERM).
OnStop = Literal["stop-servers", "leave-running"]


@dataclass(frozen=True, slots=True)
class RedundancySpec:
    """The supervisor lease: where it is kept and its timings (seconds)."""

    database: DatabaseSettings
    ttl: float
    renew: float
    retry: float

    def election(self, name: str) -> Election:
        """A fresh election machine for the supervisor process whose holder key is ``name``."""
        return Election(name, ttl=self.ttl, renew=self.renew, retry=self.retry)


def parse_redundancy(
    path: Path, own: Section, sections: dict[str, dict[str, str]], base: Path
) -> tuple[RedundancySpec | None, OnStop]:
    """``[scs]``'s ``database`` (its section checked as a Configuration Database
    section), the lease timings, and ``on-stop``.

    Raises:
        ConfigError: naming the section and key.
    """
    name = own.text("database")
    spec: RedundancySpec | None = None
    if name is not None:
        if name == own.name or name not in sections:
            raise own.error("database", f"no section [{name}] for the Configuration Database")
        db = parse_database(Section(path, name, sections[name]), base)
        ttl = own.seconds(REDUNDANCY_TABLE["supervisor-lease-ttl"])
        renew = own.seconds(REDUNDANCY_TABLE["supervisor-lease-renew"], ttl / 3)
        retry = own.seconds(REDUNDANCY_TABLE["supervisor-lease-retry"], ttl / 6)
        spec = RedundancySpec(db, ttl, renew, retry)
        try:
            spec.election("check")
        except ElectionSettingsError as exc:
            raise own.error("supervisor-lease-renew", str(exc)) from None
    else:
        for option in ("supervisor-lease-ttl", "supervisor-lease-renew", "supervisor-lease-retry"):
            if own.text(option) is not None:
                raise own.error(option, "not used without [scs] database (no election)")
    default: OnStop = "leave-running" if spec is not None else "stop-servers"
    on_stop: OnStop = own.choice(
        REDUNDANCY_TABLE["on-stop"],
        {"stop-servers": "stop-servers", "leave-running": "leave-running"},
        default,
    )
    return spec, on_stop
