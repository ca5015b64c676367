"""The supervisor election's rules one by one, on plain numbers for time."""

from __future__ import annotations

import pytest

from scs.election import (
    BecomeActive,
    BecomeStandby,
    Election,
    ElectionSettingsError,
    Mode,
    ReadLease,
    ReleaseLease,
    RenewLease,
    TakeLease,
)

TTL, RENEW, RETRY, MARGIN = 3.0, 1.0, 0.5, 0.5


def machine(name: str = "s1") -> Election:
    return Election(name, ttl=TTL, renew=RENEW, retry=RETRY, margin=MARGIN)


def active(now: float = 0.0) -> Election:
    """A supervisor that took an unheld lease at epoch 1, asked and answered at ``now``."""
    m = machine()
    assert m.start(now) == [ReadLease(1)]
    assert m.lease_seen(1, "", 0, 0.0, now) == [TakeLease(2)]
    assert m.taken(2, 1, now) == [BecomeActive(1)]
    return m


def test_a_standby_takes_an_unheld_lease_and_acts_at_its_epoch() -> None:
    m = active()
    assert m.mode is Mode.ACTIVE
    assert m.epoch == 1
    assert m.acting(0.0)
    assert m.next_deadline() == RENEW


def test_the_active_renews_every_renew_seconds_counted_from_when_it_sent() -> None:
    m = active()
    assert m.tick(1.0) == [RenewLease(3, 1)]
    assert m.next_deadline() == TTL - MARGIN  # the renewal is under way: only the stop is due
    assert m.renewed(3, now=1.8) == []  # answered 0.8 s later
    assert m.good_until == 1.0 + TTL  # from the sending, not the answer
    assert m.next_deadline() == 2.0


def test_without_a_renewal_it_stops_acting_margin_before_the_lease_ends() -> None:
    m = active()
    assert m.tick(1.0) == [RenewLease(3, 1)]  # never answered (the database hangs)
    stop = TTL - MARGIN
    assert m.acting(stop - 1e-9)
    assert not m.acting(stop)  # acting() goes by the time, whether tick came or not
    actions = m.tick(stop)
    assert actions[0] == BecomeStandby("supervisor lease not renewed in time")
    assert m.mode is Mode.STANDBY
    assert not m.acting(stop)
    assert m.renewed(3, now=stop + 0.1) == []  # the late answer does not make it act again
    assert not m.acting(stop + 0.1)


def test_the_database_unreachable_makes_it_retry_renewals_quickly() -> None:
    m = active()
    m.tick(1.0)
    assert m.unreachable(3, 1.3) == []
    assert m.next_deadline() == 1.3 + MARGIN / 2
    assert m.tick(1.55) == [RenewLease(4, 1)]
    assert m.renewed(4, now=1.6) == []
    assert m.good_until == 1.55 + TTL
    assert m.acting(4.0)


def test_a_fenced_renewal_makes_it_standby_at_once() -> None:
    m = active()
    m.tick(1.0)
    actions = m.fenced(3, "s2", 1.1)
    assert actions == [BecomeStandby("supervisor lease lost at epoch 1", "s2")]
    assert not m.acting(1.1)
    assert m.next_deadline() == 1.1 + RETRY


def test_a_standby_reads_every_retry_and_takes_once_the_lease_has_surely_expired() -> None:
    m = machine("s2")
    assert m.start(0.0) == [ReadLease(1)]
    # s1 holds it for 2 s more, as the database measured between 0.0 and 0.1.
    assert m.lease_seen(1, "s1", 4, 2.0, 0.1) == []
    assert (m.holder, m.holder_epoch) == ("s1", 4)
    assert m.next_deadline() == RETRY  # from the asking
    assert m.tick(0.5) == [ReadLease(2)]
    assert m.lease_seen(2, "s1", 4, 1.55, 0.55) == []  # not renewed: it ends by 2.1
    assert m.next_deadline() == 1.0
    m.tick(1.0)
    m.lease_seen(3, "s1", 4, 1.05, 1.05)
    m.tick(1.5)
    m.lease_seen(4, "s1", 4, 0.6, 1.5)
    assert m.next_deadline() == pytest.approx(2.0)
    m.tick(2.0)
    assert m.lease_seen(5, "s1", 4, 0.1, 2.0) == []
    assert m.next_deadline() == pytest.approx(2.1)  # the expiry comes before the next read
    assert m.tick(2.1) == [TakeLease(6)]
    assert m.taken(6, 5, 2.15) == [BecomeActive(5)]
    assert m.good_until == 2.1 + TTL


def test_a_take_refused_is_a_read() -> None:
    m = machine("s2")
    m.start(0.0)
    assert m.lease_seen(1, "", 0, 0.0, 0.0) == [TakeLease(2)]
    assert m.lease_seen(2, "s3", 1, 3.0, 0.05) == []  # s3 was quicker
    assert m.mode is Mode.STANDBY
    assert m.holder == "s3"
    assert m.next_deadline() == RETRY


def test_after_a_lapse_it_takes_its_own_lease_again_only_once_its_last_term_is_over() -> None:
    """Found by hypothesis (``test_election``): the lapsed supervisor re-took its own,
    still valid, lease at once; a command of its old epoch sent just before the
    lapse then reached a server after one of the new epoch."""
    m = active()
    m.tick(1.0)
    m.unreachable(3, 2.0)
    m.tick(2.25)
    m.unreachable(4, 2.4)  # quick retries all lost
    actions = m.tick(TTL - MARGIN)
    assert actions == [BecomeStandby("supervisor lease not renewed in time")]
    assert m.next_deadline() == TTL  # not before the old term's good_until
    assert m.tick(TTL - MARGIN + 0.1) == []
    assert m.tick(TTL) == [TakeLease(5)]
    assert m.taken(5, 2, TTL + 0.05) == [BecomeActive(2)]


def test_a_take_answered_too_late_to_act_on_is_not_acted_on() -> None:
    m = machine()
    m.start(0.0)
    assert m.lease_seen(1, "", 0, 0.0, 0.0) == [TakeLease(2)]
    # Sent at 0: good until 3.0, so acting would stop at 2.5, when the answer comes.
    assert m.taken(2, 1, TTL - MARGIN) == [TakeLease(3)]  # ours: taken afresh at once
    assert m.mode is Mode.STANDBY
    assert not m.acting(TTL - MARGIN)
    assert m.taken(3, 2, TTL - MARGIN + 0.1) == [BecomeActive(2)]
    assert m.good_until == TTL - MARGIN + TTL


def test_answers_to_asks_no_longer_under_way_are_ignored() -> None:
    m = machine()
    m.start(0.0)
    assert m.unreachable(1, 1.0) == [ReadLease(2)]  # the next ask, retry after the first
    assert m.lease_seen(1, "", 0, 0.0, 1.1) == []  # the first one's late answer
    assert m.taken(1, 7, 1.1) == []
    assert m.mode is Mode.STANDBY


def test_stopping_stops_acting_at_once_and_releases_the_lease_margin_later() -> None:
    """Found by hypothesis (``test_election``): a release at once let a standby take
    over and command while the stopping supervisor's last command was on its way."""
    m = active()
    assert m.stop(0.1) == [BecomeStandby("supervisor stopping: lease to be released")]
    assert m.mode is Mode.STOPPED
    assert not m.acting(0.1)
    assert m.next_deadline() == pytest.approx(0.1 + MARGIN)
    assert m.tick(0.1 + MARGIN / 2) == []
    assert m.tick(0.1 + MARGIN) == [ReleaseLease(1)]
    assert m.next_deadline() is None
    assert m.tick(10.0) == []


def test_a_standby_takes_over_within_ttl_plus_retry_plus_a_round_trip_of_the_death() -> None:
    """Zero delays: the active renewed at 10.0 and died; its lease ends at 13.0."""
    s2 = machine("s2")
    s2.start(0.0)
    t = 10.2
    # A read answered at 10.2: s1 renewed at 10.0, then died.
    actions = s2.lease_seen(1, "s1", 1, 2.8, t)
    for _ in range(100):
        if not actions:
            deadline = s2.next_deadline()
            assert deadline is not None
            t = max(t, deadline)
            actions = s2.tick(t)
        action = actions.pop(0)
        if isinstance(action, TakeLease) and t >= 13.0:
            actions += s2.taken(action.ask, 2, t)
        elif isinstance(action, ReadLease | TakeLease):  # a read, or a take refused
            actions += s2.lease_seen(action.ask, "s1", 1, 13.0 - t, t)
        if isinstance(action, BecomeActive):
            break
    assert s2.acting(t)
    assert t == pytest.approx(13.0)  # no delays: at the expiry itself
    assert t <= 10.0 + TTL + RETRY


@pytest.mark.parametrize(
    ("ttl", "renew", "retry", "margin"),
    [(3.0, 0.0, 0.5, 0.5), (3.0, 2.5, 0.5, 0.5), (3.0, 1.0, 0.0, 0.5), (3.0, 1.0, 0.5, 0.0)],
)
def test_timings_that_cannot_work_are_refused_by_name(
    ttl: float, renew: float, retry: float, margin: float
) -> None:
    with pytest.raises(ElectionSettingsError, match="supervisor lease"):
        Election("s1", ttl=ttl, renew=renew, retry=retry, margin=margin)
