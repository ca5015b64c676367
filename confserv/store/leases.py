"""The database's one lease, and each process's claim on its Application, as plans.

One Configuration Database has one lease (row ``database`` of ``cfg_lease``):
whatever any configuration file says, at most one server process accepts
writes, and epochs are global to the database. A holder is an Application
plus a per-process instance (:mod:`confserv.store.instance`): a second process of
the same Application never takes a valid lease from the first.

Every running server process also keeps a *claim* on its Application (row
``app:<name>``), renewed like the lease: a second process of the same
Application, on any host and with any ports, is refused at start-up and told
which process holds it (Genesys refuses two daemons of one name; so do we).

Plans are generators of :class:`~confserv.store.base.Query` (see that module);
times come from the database clock (``{now}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from confserv.wire.errors import ClaimLostError, FencedError, InstanceClaimedError, LeaseHeldError

from .instance import Instance, describe_instance, instance_id
from .plan import Plan, Query, Rows

#: The key of the database's lease row.
LEASE_ROW = "database"


def claim_row(app: str) -> str:
    """The key of an Application's claim row."""
    return f"app:{app}"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who takes a lease or a claim: an Application and this process's instance."""

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


def read_lease_plan() -> Plan:
    """The database's lease (None only in a database ``cfgctl init`` never finished)."""
    return _row((yield Query(_SELECT, (LEASE_ROW,))))


def acquire_lease_plan(
    holder: Holder, ttl: float, force: bool, address: str, over: int | None = None
) -> Plan:
    """Take the lease (expired, ours, unheld, or forced), raising the epoch by one.

    ``over``: a forced take overrides only the lease at that epoch, the one whose
    holder's death is proven; a lease that has moved on since (another process
    took it, expired, at a newer epoch) is not the dead one's, and is refused
    like any valid lease. None: force overrides whatever holds it (an operator).
    """
    lease = _row((yield Query(_SELECT, (LEASE_ROW,), lock=True)))
    inst = holder.instance.to_json()
    if lease is None:
        rows = yield Query(
            "INSERT INTO cfg_lease (name, epoch, holder, instance, expires_at, address) "
            f"VALUES (?, 1, ?, ?, {{now}} + ?, ?) RETURNING {_COLUMNS}",
            (LEASE_ROW, holder.app, inst, ttl, address),
        )
    else:
        moved_on = force and over is not None and lease.epoch != over
        if lease.valid and lease.holder_key != holder.key and (not force or moved_on):
            since = f" (the proof of death was for epoch {over})" if moved_on else ""
            raise LeaseHeldError(
                f"the lease is held by '{lease.holder}' ({lease.process}) at epoch "
                f"{lease.epoch} for {lease.remaining:.3f} s more{since}",
                holder=lease.holder,
                epoch=lease.epoch,
                instance=lease.instance,
            )
        rows = yield Query(
            "UPDATE cfg_lease SET epoch = epoch + 1, holder = ?, instance = ?, "
            f"expires_at = {{now}} + ?, address = ? WHERE name = ? RETURNING {_COLUMNS}",
            (holder.app, inst, ttl, address, LEASE_ROW),
        )
    acquired = _row(rows)
    assert acquired is not None
    return acquired


def renew_lease_plan(holder: Holder, epoch: int, ttl: float) -> Plan:
    """Extend the lease if this very process still holds it at ``epoch``."""
    rows = yield Query(
        "UPDATE cfg_lease SET expires_at = {now} + ? "
        "WHERE name = ? AND holder = ? AND instance = ? AND epoch = ? "
        f"RETURNING {_COLUMNS}",
        (ttl, LEASE_ROW, holder.app, holder.instance.to_json(), epoch),
    )
    lease = _row(rows)
    if lease is None:
        now = _row((yield Query(_SELECT, (LEASE_ROW,))))
        who = "nobody" if now is None or not now.holder else f"'{now.holder}' ({now.process})"
        at = 0 if now is None else now.epoch
        raise FencedError(
            f"the lease is no longer held by this process at epoch {epoch}: "
            f"{who} holds it at epoch {at}"
        )
    return lease


def release_lease_plan(holder: Holder, epoch: int) -> Plan:
    """Give the lease up if this process holds it at ``epoch`` (no error when not)."""
    yield Query(
        "UPDATE cfg_lease SET holder = '', instance = '', expires_at = {now} "
        "WHERE name = ? AND holder = ? AND instance = ? AND epoch = ?",
        (LEASE_ROW, holder.app, holder.instance.to_json(), epoch),
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
