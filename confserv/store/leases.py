"""The database's one lease, each process's claim, and the supervisors' lease, as plans.

One Configuration Database has one lease (row ``database`` of ``cfg_lease``):
whatever any configuration file says, at most one server process accepts
writes, and epochs are global to the database. A holder is an Application
plus a per-process instance (:mod:`confserv.store.instance`): a second process of
the same Application never takes a valid lease from the first.

Every running server process also keeps a *claim* on its Application (row
``app:<name>``), renewed like the lease: a second process of the same
Application, on any host and with any ports, is refused at start-up and told
which process holds it (Genesys refuses two daemons of one name; so do we).

The supervisors of the installation elect their active one with a lease of
their own (row ``supervisor``, :data:`SUPERVISOR`): the same rules as the
database's lease, without force, with its own epoch, which every command of
the active supervisor carries. Its row is made at the first take (a database
``cfgctl init`` made before it existed has none). Servers never read it: every
query of theirs names its row.

Plans are generators of :class:`~confserv.store.base.Query` (see that module);
times come from the database clock (``{now}``). The lease plans are written
once for any lease row (:class:`LeaseRow`): each row differs only in its name
and in the words and exceptions of its refusals.
"""

from __future__ import annotations

from dataclasses import dataclass

from confserv.wire.errors import (
    ClaimLostError,
    ConfServError,
    FencedError,
    InstanceClaimedError,
    LeaseHeldError,
)

from .instance import Instance, describe_instance, instance_id
from .plan import Plan, Query, Rows

#: The key of the database's lease row.
LEASE_ROW = "database"

#: The key of the supervisors' lease row (one active supervisor per database).
SUPERVISOR_ROW = "supervisor"


def claim_row(app: str) -> str:
    """The key of an Application's claim row."""
    return f"app:{app}"


class SupervisorLeaseHeldError(LeaseHeldError):
    """The supervisor lease is held, unexpired, by another supervisor process: this
    one stays standby."""


class SupervisorFencedError(ConfServError):
    """The supervisor lease is no longer this supervisor's at its epoch (another took
    it): this supervisor must stop acting at once."""


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A lease row of ``cfg_lease``, and how its refusals are told."""

    #: The row's key.
    name: str
    #: The lease's name in messages.
    what: str
    #: Raised when another process holds it, unexpired.
    held: type[LeaseHeldError]
    #: Raised when a renewal finds it is no longer ours at that epoch.
    fenced: type[ConfServError]


#: The database's lease: who accepts writes.
DATABASE = LeaseRow(LEASE_ROW, "the lease", LeaseHeldError, FencedError)
#: The supervisors' lease: which supervisor acts.
SUPERVISOR = LeaseRow(
    SUPERVISOR_ROW, "the supervisor lease", SupervisorLeaseHeldError, SupervisorFencedError
)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who takes a lease or a claim: an Application (or a supervisor's name) and this
    process's instance."""

    app: str
    instance: Instance

    @property
    def key(self) -> str:
        """``app#instance-id``: equal only for the very same process."""
        return f"{self.app}#{self.instance.id}"


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease (or a claim) as the database has it, with the database clock's ``now``."""

    epoch: int
    holder: str
    expires_at: float
    now: float
    address: str = ""
    instance: str = ""

    @property
    def valid(self) -> bool:
        """Whether an unexpired holder exists."""
        return bool(self.holder) and self.expires_at > self.now

    @property
    def remaining(self) -> float:
        """Seconds until expiry by the database clock (negative when expired)."""
        return self.expires_at - self.now

    @property
    def holder_key(self) -> str:
        """``app#instance-id`` of the holder ('' when unheld)."""
        return f"{self.holder}#{instance_id(self.instance)}" if self.holder else ""

    @property
    def process(self) -> str:
        """The holding process, described for a log line."""
        return describe_instance(self.instance)


_COLUMNS = "epoch, holder, expires_at, {now}, address, instance"
_SELECT = f"SELECT {_COLUMNS} FROM cfg_lease WHERE name = ?"


def _row(rows: Rows) -> Lease | None:
    if not rows:
        return None
    epoch, holder, expires_at, now, address, instance = rows[0]
    return Lease(
        int(epoch), str(holder), float(expires_at), float(now), str(address), str(instance)
    )


def read_lease_plan(row: LeaseRow = DATABASE) -> Plan:
    """The lease of ``row`` (None only when it was never made: the database's lease in
    a database ``cfgctl init`` never finished, the supervisors' before its first take)."""
    return _row((yield Query(_SELECT, (row.name,))))


def acquire_lease_plan(
    holder: Holder, ttl: float, force: bool, address: str, over: int | None = None
) -> Plan:
    """Take the database's lease (expired, ours, unheld, or forced), raising the epoch.

    ``over``: a forced take overrides only the lease at that epoch, the one whose
    holder's death is proven; a lease that has moved on since (another process
    took it, expired, at a newer epoch) is not the dead one's, and is refused
    like any valid lease. None: force overrides whatever holds it (an operator).
    """
    return (yield from take_plan(DATABASE, holder, ttl, address, force=force, over=over))


def take_plan(
    row: LeaseRow,
    holder: Holder,
    ttl: float,
    address: str,
    *,
    force: bool = False,
    over: int | None = None,
) -> Plan:
    """Take the lease of ``row`` (see :func:`acquire_lease_plan`), raising its epoch by
    one; the row is made first when missing (at epoch 0, unheld).

    The row exists before it is locked: two first takes at once then queue on its
    lock (PostgreSQL's ``INSERT ... ON CONFLICT`` waits for the other's insert) and
    the second sees the first's holder, instead of failing on a duplicate key.
    """
    yield Query(
        "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
        "VALUES (?, 0, '', '', 0, '') ON CONFLICT (name) DO NOTHING",
        (row.name,),
    )
    lease = _row((yield Query(_SELECT, (row.name,), lock=True)))
    assert lease is not None
    moved_on = force and over is not None and lease.epoch != over
    if lease.valid and lease.holder_key != holder.key and (not force or moved_on):
        since = f" (the proof of death was for epoch {over})" if moved_on else ""
        raise row.held(
            f"{row.what} is held by '{lease.holder}' ({lease.process}) at epoch "
            f"{lease.epoch} for {lease.remaining:.3f} s more{since}",
            holder=lease.holder,
            epoch=lease.epoch,
            instance=lease.instance,
        )
    rows = yield Query(
        "UPDATE cfg_lease SET epoch = epoch + 1, holder = ?, instance = ?, "
        f"expires_at = {{now}} + ?, address = ? WHERE name = ? RETURNING {_COLUMNS}",
        (holder.app, holder.instance.to_json(), ttl, address, row.name),
    )
    acquired = _row(rows)
    assert acquired is not None
    return acquired


def renew_lease_plan(holder: Holder, epoch: int, ttl: float, row: LeaseRow = DATABASE) -> Plan:
    """Extend the lease of ``row`` if this very process still holds it at ``epoch``
    (``row.fenced`` when not: another took it, or this process took it again)."""
    rows = yield Query(
        "UPDATE cfg_lease SET expires_at = {now} + ? "
        "WHERE name = ? AND holder = ? AND instance = ? AND epoch = ? "
        f"RETURNING {_COLUMNS}",
        (ttl, row.name, holder.app, holder.instance.to_json(), epoch),
    )
    lease = _row(rows)
    if lease is None:
        now = _row((yield Query(_SELECT, (row.name,))))
        who = "nobody" if now is None or not now.holder else f"'{now.holder}' ({now.process})"
        at = 0 if now is None else now.epoch
        raise row.fenced(
            f"{row.what} is no longer held by this process at epoch {epoch}: "
            f"{who} holds it at epoch {at}"
        )
    return lease


def release_lease_plan(holder: Holder, epoch: int, row: LeaseRow = DATABASE) -> Plan:
    """Give the lease of ``row`` up if this process holds it at ``epoch`` (no error
    when not); its epoch stays, the next take raises it."""
    yield Query(
        "UPDATE cfg_lease SET holder = '', instance = '', expires_at = {now} "
        "WHERE name = ? AND holder = ? AND instance = ? AND epoch = ?",
        (row.name, holder.app, holder.instance.to_json(), epoch),
    )


def claim_plan(holder: Holder, ttl: float) -> Plan:
    """Claim the Application for this process: refused while another live process
    holds it (a claim whose process is known dead, on this host, is taken over)."""
    name = claim_row(holder.app)
    current = _row((yield Query(_SELECT, (name,), lock=True)))
    inst = holder.instance.to_json()
    if current is not None and current.valid and current.holder_key != holder.key:
        other = Instance.from_json(current.instance)
        if other is None or not other.known_dead():
            raise InstanceClaimedError(
                f"Application '{holder.app}' already runs as {current.process} "
                f"(its claim lasts {current.remaining:.1f} s more unless renewed): "
                "stop that process first, or start this one with another -s"
            )
    if current is None:
        rows = yield Query(
            "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
            f"VALUES (?, 0, ?, ?, {{now}} + ?, '') RETURNING {_COLUMNS}",
            (name, holder.app, inst, ttl),
        )
    else:
        rows = yield Query(
            "UPDATE cfg_lease SET holder = ?, instance = ?, expires_at = {now} + ? "
            f"WHERE name = ? RETURNING {_COLUMNS}",
            (holder.app, inst, ttl, name),
        )
    claimed = _row(rows)
    assert claimed is not None
    return claimed


def renew_claim_plan(holder: Holder, ttl: float) -> Plan:
    """Extend this process's claim; ClaimLostError when another process took it."""
    name = claim_row(holder.app)
    rows = yield Query(
        "UPDATE cfg_lease SET expires_at = {now} + ? WHERE name = ? AND instance = ? "
        f"RETURNING {_COLUMNS}",
        (ttl, name, holder.instance.to_json()),
    )
    if not rows:
        current = _row((yield Query(_SELECT, (name,))))
        who = "nobody" if current is None else current.process
        raise ClaimLostError(
            f"Application '{holder.app}' was claimed by {who} while this process was away"
        )
    return _row(rows)


def release_claim_plan(holder: Holder) -> Plan:
    """Give the claim up at once (a clean stop: a restart need not wait for it)."""
    yield Query(
        "UPDATE cfg_lease SET expires_at = {now} WHERE name = ? AND instance = ?",
        (claim_row(holder.app), holder.instance.to_json()),
    )


# -- the supervisors' lease: own plan names, so a trace (or the simulation, which
# -- watches acquire_lease_plan) never takes them for the database's lease.


def read_supervisor_lease_plan() -> Plan:
    """The supervisor lease (None before any supervisor took it)."""
    return (yield from read_lease_plan(SUPERVISOR))


def acquire_supervisor_lease_plan(holder: Holder, ttl: float, address: str) -> Plan:
    """Become the active supervisor: only when the supervisor lease is expired, unheld
    or already this process's; raises its epoch. SupervisorLeaseHeldError when another
    supervisor holds it."""
    return (yield from take_plan(SUPERVISOR, holder, ttl, address))


def renew_supervisor_lease_plan(holder: Holder, epoch: int, ttl: float) -> Plan:
    """Extend the supervisor lease; SupervisorFencedError when it is no longer this
    process's at ``epoch``."""
    return (yield from renew_lease_plan(holder, epoch, ttl, SUPERVISOR))


def release_supervisor_lease_plan(holder: Holder, epoch: int) -> Plan:
    """Give the supervisor lease up (a clean stop: a standby need not wait for it)."""
    yield from release_lease_plan(holder, epoch, SUPERVISOR)


# -- each supervisor's presence (row ``scs:<name>``): what ``scs status`` lists as the
# -- installation's supervisors, active or standby; two live processes of one name refused.

#: The prefix of the supervisors' presence rows.
PRESENCE_PREFIX = "scs:"


class SupervisorNameTakenError(ConfServError):
    """Another live supervisor process announces itself under this name: give each
    ``scs`` of an installation its own ``--name``."""


def announce_supervisor_plan(holder: Holder, ttl: float, address: str) -> Plan:
    """Say that this supervisor process lives (for ``ttl`` seconds more), under the
    name ``holder.app``; SupervisorNameTakenError while another live process has it."""
    name = PRESENCE_PREFIX + holder.app
    yield Query(
        "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
        "VALUES (?, 0, '', '', 0, '') ON CONFLICT (name) DO NOTHING",
        (name,),
    )
    current = _row((yield Query(_SELECT, (name,), lock=True)))
    assert current is not None
    if current.valid and current.holder_key != holder.key:
        other = Instance.from_json(current.instance)
        if other is None or not other.known_dead():
            raise SupervisorNameTakenError(
                f"a supervisor named '{holder.app}' already runs as {current.process} "
                f"(for {current.remaining:.1f} s more unless renewed): give this one "
                "another --name"
            )
    rows = yield Query(
        "UPDATE cfg_lease SET holder = ?, instance = ?, expires_at = {now} + ?, address = ? "
        f"WHERE name = ? RETURNING {_COLUMNS}",
        (holder.app, holder.instance.to_json(), ttl, address, name),
    )
    announced = _row(rows)
    assert announced is not None
    return announced


def list_supervisors_plan() -> Plan:
    """The supervisors that announced themselves and have not lapsed, by name."""
    rows = yield Query(
        f"SELECT {_COLUMNS} FROM cfg_lease WHERE name LIKE ? AND expires_at > {{now}} "
        "ORDER BY name",
        (PRESENCE_PREFIX + "%",),
    )
    return [lease for row in rows if (lease := _row([row])) is not None]


def withdraw_supervisor_plan(holder: Holder) -> Plan:
    """This supervisor process stops: its presence lapses at once."""
    yield Query(
        "UPDATE cfg_lease SET expires_at = {now} WHERE name = ? AND instance = ?",
        (PRESENCE_PREFIX + holder.app, holder.instance.to_json()),
    )
