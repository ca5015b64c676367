"""The role machine's rules one by one, on plain numbers for time."""

from __future__ import annotations

from confserv.ha.roles import (
    BecomeBackup,
    BecomePrimary,
    RenewLease,
    Role,
    RoleMachine,
    StopWrites,
    TakeLease,
)


def primary(now: float = 0.0) -> RoleMachine:
    m = RoleMachine("a", ttl=4.0, renew=1.0)
    m.start()
    assert m.lease_read("", False) == [TakeLease(force=False)]
    assert m.lease_taken(1, sent=now, now=now) == [BecomePrimary(1)]
    return m


def test_a_primary_renews_well_before_expiry() -> None:
    m = primary()
    assert m.next_deadline() == 1.0
    assert m.tick(1.0) == [RenewLease(1)]
    assert m.renewed(1, sent=1.0, now=1.0) == []
    assert m.good_until == 5.0


def test_without_renewal_writes_stop_before_the_lease_runs_out_and_it_drops_to_backup() -> None:
    m = primary()
    m.tick(1.0)
    m.db_unreachable(1.01)  # the renewal could not reach the database
    deadline = m.next_deadline()
    assert deadline is not None
    while m.writable:
        t = m.next_deadline()
        assert t is not None
        actions = m.tick(t)
        if not m.writable:
            assert t <= 4.0 - m.margin + 1e-9  # before the lease (sent at 0, ttl 4) runs out
            assert any(isinstance(a, BecomeBackup) for a in actions)
        elif any(isinstance(a, RenewLease) for a in actions):
            m.db_unreachable(t)
    assert m.role is Role.BACKUP


def test_failsafe_database_unreachable_but_the_backup_still_follows() -> None:
    m = primary()
    m.tick(1.0)
    m.db_unreachable(1.01)
    m.peer_ack(3.5)  # the backup acknowledged this server as primary recently
    actions: list[object] = []
    t = 0.0
    while m.writable:
        t = m.next_deadline() or t
        actions = m.tick(t)
        if any(isinstance(a, RenewLease) for a in actions) and m.writable:
            m.db_unreachable(t)
    assert any(isinstance(a, StopWrites) for a in actions)
    assert m.role is Role.PRIMARY  # role kept, writes stopped
    assert not m.writable
    # The database comes back: a successful renewal restores writes.
    renew = next(a for a in m.tick(m.next_deadline() or t) if isinstance(a, RenewLease))
    assert m.renewed(renew.epoch, sent=t + 1.0, now=t + 1.0) == [BecomePrimary(1)]
    assert m.writable


def test_a_renewal_refused_for_a_newer_epoch_demotes_at_once() -> None:
    m = primary()
    m.tick(1.0)
    actions = m.renew_fenced(1, "lease moved to epoch 2")
    assert isinstance(actions[0], BecomeBackup)
    assert not m.writable


def test_a_refusal_for_an_older_epoch_is_ignored() -> None:
    """Found on SQLite: a renewal of epoch 1 answered after the lease was re-taken at
    epoch 2 demoted the new primary. A refusal is only about its own epoch."""
    m = primary()
    m.lease_taken(2, sent=1.0)
    assert m.renew_fenced(1, "lease moved on") == []
    assert (m.role, m.epoch, m.writable) == (Role.PRIMARY, 2, True)


def test_one_promotion_takes_the_lease_once() -> None:
    m = RoleMachine("b", ttl=4.0, renew=1.0)
    m.start()
    m.lease_read("a", True)  # backup
    assert m.promote(force=False) == [TakeLease(force=False)]
    assert m.promote(force=True) == []  # asked again while the take is under way
    m.lease_taken(2, sent=0.0)
    assert m.promote(force=False) == []


def test_a_lease_of_a_known_dead_holder_is_taken_by_force() -> None:
    m = RoleMachine("a#new", ttl=4.0, renew=1.0)
    m.start()
    assert m.lease_read("a#old", True, holder_dead=True) == [TakeLease(force=True)]


def test_a_late_take_renews_before_writing() -> None:
    m = RoleMachine("a", ttl=4.0, renew=1.0)
    m.start()
    m.lease_read("", False)
    m.lease_taken(1, sent=0.0, now=3.9)  # answered 3.9 s after it was asked
    assert not m.writable
    assert m.role is Role.PRIMARY
    assert m.tick(3.9) == [RenewLease(1)]
    assert m.renewed(1, sent=3.9, now=3.9) == [BecomePrimary(1)]
    assert m.writable


def test_a_valid_peer_lease_makes_a_starting_server_backup() -> None:
    m = RoleMachine("b", ttl=4.0, renew=1.0)
    m.start()
    [action] = m.lease_read("a", True)
    assert isinstance(action, BecomeBackup)
    assert m.role is Role.BACKUP


async def test_a_client_refuses_notifications_from_an_older_epoch() -> None:
    from confserv.client.resilient import ResilientClient

    rc = ResilientClient(
        [("127.0.0.1", 1)], reconnect_timeout=1, reconnect_attempts=1, give_up_after=None
    )
    rc._subscriptions = [(None, None)]
    rc._backlog = [
        {"serial": 5, "epoch": 2, "type": "Host", "dbid": 1},
        {"serial": 6, "epoch": 1, "type": "Host", "dbid": 2},  # a deposed primary's
        {"serial": 6, "epoch": 2, "type": "Host", "dbid": 3},
    ]
    assert (await rc.notification())["dbid"] == 1
    assert (await rc.notification())["dbid"] == 3
    assert rc.stale_refused == 1


def test_a_renewal_answered_too_late_does_not_reopen_writes() -> None:
    """Found by hypothesis (tests/confserv/test_roles_epochs.py): a renewal sent at 3.0
    and answered at 5.0 (ttl 2, margin 0.25) re-opened writes on a lease that may
    already have run out. The lease counts from the sending; such an answer leaves
    the server unwritable and is followed by the next renewal at once."""
    m = RoleMachine("a", ttl=2.0, renew=0.5)
    m.start()
    m.lease_read("", False)
    m.lease_taken(1, sent=0.0, now=2.0)  # late too: not writable
    assert not m.writable
    out = m.renewed(1, sent=3.0, now=5.0)
    assert not m.writable
    assert BecomePrimary(1) not in out
    assert m.renewed(1, sent=5.0, now=5.0) == [BecomePrimary(1)]
    assert m.writable


def test_a_dead_holder_is_taken_over_only_at_the_epoch_it_was_read_at() -> None:
    """Found by make chaos (PostgreSQL, first seed 184431, schedule 74): both servers,
    restarted together, read the dead holder of epoch 29; one took epoch 30, and the
    other's forced take then overrode that live holder (epoch 31, a split brain of
    35 ms that the supervisor stepped down). The forced take names the epoch its
    proof is about; the store refuses it once the lease has moved on
    (tests/confserv/test_store.py: ..._only_the_epoch_whose_holder_is_proven_dead)."""
    m = RoleMachine("b", ttl=2.0, renew=0.5)
    m.start()
    assert m.lease_read("a#1", True, holder_dead=True, epoch=29) == [TakeLease(force=True, over=29)]
