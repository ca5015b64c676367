"""Proof of death, adoption and step-down, on the pure core (plain numbers; hypothesis).

Proof of death is the exit of the very process the supervisor watches for a
server (started or adopted), and only when no link reports the server as
another pid. The scenarios of issue 10, then a state machine over a small
world of real and duplicate processes: never a forced promotion unless the
process that answered as the primary was watched and exited (that machine
is in test_proof_machine.py).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scs import proof
from scs.actions import Adopt, Demote, Emit, Fence, Promote, Start
from scs.config import ScsSettings, load_scs_settings
from scs.core import SupervisorCore
from scs.observations import (
    AdoptionFailed,
    Booted,
    DemoteDone,
    LinkLost,
    LinkUp,
    OperatorPause,
    ProcessExited,
    ProcessStarted,
    PromoteDone,
    StatusSeen,
    Tick,
)
from scs.status import MalformedStatus, ServerStatus, parse_status

from .test_config import GOOD
from .test_core import core_with_primary, ids, scs_settings, status_of


def events_of(actions: list[Any], event_id: int) -> list[dict[str, Any]]:
    return [a.fields for a in actions if isinstance(a, Emit) and a.event.id == event_id]


def forced(actions: list[Any]) -> bool:
    return any(isinstance(a, Promote) and a.force for a in actions)


def pair_settings(tmp: Path, lines: str) -> ScsSettings:
    """The test file with ``lines`` in both pair members' sections."""
    conf = tmp / "scs.conf"
    conf.write_text(GOOD.replace("[a]\n", f"[a]\n{lines}").replace("[b]\n", f"[b]\n{lines}"))
    return load_scs_settings(conf)


def restarted_core(tmp: Path) -> SupervisorCore:
    """A supervisor just restarted: it knows nothing yet."""
    core = SupervisorCore(scs_settings(tmp), random.Random(3))
    core.step(Booted(), 0.0)
    return core


# -- issue 10: a supervisor restarted during a failover, a duplicate start failing ------


def test_a_failed_duplicate_is_not_proof_while_the_link_reports_the_primary(
    tmp_path: Path,
) -> None:
    core = restarted_core(tmp_path)
    # The adoption's status request timed out, so a copy was started ...
    core.step(ProcessStarted("a", 300), 0.5)
    # ... while the busy primary did answer the watch link, as pid 200.
    up = core.step(
        LinkUp("a", status_of({"role": "primary", "epoch": 2, "serial": 9, "pid": 200})), 0.6
    )
    assert not any(isinstance(a, Adopt) for a in up)  # pid 300 is still being watched
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "serial": 9, "pid": 201})), 0.6)
    out = core.step(ProcessExited("a", 300, "exit code 2"), 0.7)  # port in use
    assert not forced(out)
    assert not any(isinstance(a, Promote) for a in out)
    (line,) = events_of(out, 40109)
    assert line["pid"] == 300
    assert "'a' runs as pid 200" in line["why"]
    assert Adopt("a", 200) in out  # watch the real one instead
    assert 40103 not in ids(out)  # and no restart: it runs
    assert core.members["a"].process == "running"
    core.step(ProcessStarted("a", 200), 0.8)  # adopted (pidfd)
    # Now the real primary's death is proof.
    dead = core.step(ProcessExited("a", 200, "exited (adopted process)"), 9.0)
    assert Promote("b", force=True, over_epoch=2) in dead


def test_a_failed_duplicate_is_not_proof_while_the_primary_is_silent(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)  # a watched as 100, b as 101
    core.step(LinkLost("a", "ADDP timeout"), 5.0)  # silent: a failover without force begins
    # Say its watcher was lost and a copy started (pid 300), which fails at once.
    core.members["a"].watched = None
    core.step(ProcessStarted("a", 300), 5.1)
    out = core.step(ProcessExited("a", 300, "exit code 2"), 5.2)
    assert not forced(out)
    assert "'a' last answered as pid 100" in events_of(out, 40109)[0]["why"]
    assert Adopt("a", 100) in out


def test_a_server_that_answers_is_adopted_not_started_twice(tmp_path: Path) -> None:
    core = restarted_core(tmp_path)
    out = core.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    assert Adopt("a", 200) in out
    assert not core.may_start("a")
    # Its peer, held back until the first answers, answers as well: adopted, not started.
    out = core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "pid": 201})), 0.2)
    assert Adopt("b", 201) in out
    assert not any(isinstance(a, Start) and a.server == "b" for a in core.step(Tick(), 100.0))
    # Adoption did not take (a race): still no second copy while the link reports it.
    core.step(AdoptionFailed("b", 201, 201, "no such process on this host"), 0.3)
    assert not core.may_start("b")


def test_the_exit_of_an_unwatched_pid_is_not_proof(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)
    out = core.step(ProcessExited("a", 555, "exit code 2"), 3.0)
    assert not forced(out)
    assert "'a' is watched as pid 100" in events_of(out, 40109)[0]["why"]
    assert core.members["a"].process == "running"
    assert core.members["a"].watched == 100


def test_a_pid_that_cannot_be_watched_is_never_proof(tmp_path: Path) -> None:
    core = restarted_core(tmp_path)
    core.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "pid": 201})), 0.1)
    # pidfd_open failed for both (e.g. not visible from here) and neither answers when asked.
    out = core.step(AdoptionFailed("a", 200, None, "no such process on this host"), 0.2)
    out += core.step(AdoptionFailed("b", 201, None, "no such process on this host"), 0.2)
    assert not forced(out)
    assert not any(isinstance(a, Promote) for a in out)
    assert len(events_of(out, 40110)) == 2
    assert 40102 not in ids(out)  # no exit was seen, and none is reported
    # Still answering as the same pid: watched by its link only, never proof.
    core2 = restarted_core(tmp_path)
    core2.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    out = core2.step(AdoptionFailed("a", 200, 200, "no such process on this host"), 0.2)
    assert "its exit cannot be seen" in events_of(out, 40110)[0]["why"]
    assert not core2.may_start("a")
    assert not any(
        isinstance(a, Adopt) for a in core2.step(StatusSeen("a", status_of({"pid": 200})), 0.3)
    )
    # Answering as another pid: that one is adopted.
    core3 = restarted_core(tmp_path)
    core3.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    assert Adopt("a", 210) in core3.step(AdoptionFailed("a", 200, 210, "gone"), 0.2)


def test_a_silent_primary_gone_before_it_was_watched_fails_over_without_force(
    tmp_path: Path,
) -> None:
    core = restarted_core(tmp_path)
    core.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    core.step(ProcessStarted("b", 201), 0.1)
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "pid": 201})), 0.1)
    out = core.step(AdoptionFailed("a", 200, None, "no such process on this host"), 0.2)
    assert 40103 in ids(out)  # restarted ...
    out = core.step(LinkLost("a", "closed by peer"), 0.3)
    assert 40302 in ids(out)  # ... and the failover waits for the lease
    out = core.step(Tick(), 10.0)
    assert Promote("b", force=False) in out
    assert not forced(out)


def test_a_process_that_never_answered_proves_nothing_of_the_one_that_did(
    tmp_path: Path,
) -> None:
    """The primary answered as 200, went silent, and could not be watched; the copy
    started after it (300) dies before answering: no force, and it is not fenced."""
    core = restarted_core(tmp_path)
    core.step(LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1)
    core.step(ProcessStarted("b", 201), 0.1)
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "pid": 201})), 0.1)
    core.step(LinkLost("a", "ADDP timeout"), 1.0)
    core.step(AdoptionFailed("a", 200, None, "no such process on this host"), 1.1)
    core.step(ProcessStarted("a", 300), 2.0)  # its restart
    out = core.step(Tick(), 1.0 + proof.FENCE_AFTER_FALLBACK)
    assert not any(isinstance(a, Fence) for a in out)  # 300 is not the silent primary
    assert 40315 in ids(out)
    out = core.step(ProcessExited("a", 300, "exit code 2"), 12.0)
    assert not forced(out)


def test_a_restarted_supervisor_fences_a_stopped_primary_found_in_its_records(
    tmp_path: Path,
) -> None:
    """Restarted while the primary is stopped inside a SQLite transaction: the host's
    records give its process (adopted, found running), it never answers, the backup's
    promotion hangs on the lock, and the found process is fenced. Its exit is proof of
    nothing more than itself: the promotion is not forced (the lease decides)."""
    core = restarted_core(tmp_path)
    core.step(ProcessStarted("a", 200, adopted=True), 0.05)  # from the records
    core.step(ProcessStarted("b", 201, adopted=True), 0.05)
    backup = {"role": "backup", "epoch": 2, "pid": 201, "lease_ttl": 2.0, "engine": "sqlite"}
    core.step(LinkUp("b", status_of(backup)), 0.1)
    core.step(Tick(), 0.1)
    out = core.step(Tick(), 2.1)
    assert 40313 in ids(out)  # no primary: the backup is promoted, without force
    assert Promote("b", force=False) in out
    out = core.step(Tick(), 2.1 + proof.PROMOTE_HANG)
    assert Fence("a", 200) in out  # the promotion hangs on SQLite's lock
    out = core.step(ProcessExited("a", 200, "killed by SIGKILL"), 2.5)
    assert not forced(out)


def test_a_fencing_due_before_the_primary_was_found_is_carried_out_when_it_is(
    tmp_path: Path,
) -> None:
    """The fencing came due while no process of the silent primary was known (the
    supervisor was still finding it): it is not given up, it happens at the adoption."""
    core = restarted_core(tmp_path)
    core.step(ProcessStarted("b", 201, adopted=True), 0.05)
    backup = {"role": "backup", "epoch": 2, "pid": 201, "lease_ttl": 2.0, "engine": "sqlite"}
    core.step(LinkUp("b", status_of(backup)), 0.1)
    core.step(Tick(), 0.1)
    assert Promote("b", force=False) in core.step(Tick(), 2.1)
    out = core.step(Tick(), 2.1 + proof.PROMOTE_HANG)
    assert not any(isinstance(a, Fence) for a in out)  # nothing of it is known to run
    out = core.step(ProcessStarted("a", 200, adopted=True), 3.0)
    assert Fence("a", 200) in out
    assert events_of(out, 40312)[0]["pid"] == 200
    # A copy it started itself is not the stopped primary: never fenced.
    core2 = restarted_core(tmp_path)
    core2.step(ProcessStarted("b", 201, adopted=True), 0.05)
    core2.step(LinkUp("b", status_of(backup)), 0.1)
    core2.step(Tick(), 0.1)
    core2.step(Tick(), 2.1)
    core2.step(Tick(), 2.1 + proof.PROMOTE_HANG)
    out = core2.step(ProcessStarted("a", 300), 3.0)
    assert not any(isinstance(a, Fence) for a in out)


def test_only_a_watched_pid_is_fenced(tmp_path: Path) -> None:
    core = restarted_core(tmp_path)
    core.step(
        LinkUp("a", status_of({"role": "primary", "epoch": 2, "pid": 200})), 0.1
    )  # adoption pending
    core.step(ProcessStarted("b", 201), 0.1)
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 2, "pid": 201})), 0.1)
    core.step(LinkLost("a", "ADDP timeout"), 1.0)
    out = core.step(Tick(), 1.0 + proof.FENCE_AFTER_FALLBACK)
    assert not any(isinstance(a, Fence) for a in out)
    assert events_of(out, 40315)[0]["pid"] == 200


# -- split brain: the older epoch steps down ---------------------------------------------


def test_of_two_primaries_the_older_epoch_is_told_to_step_down(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)  # a primary at epoch 1
    out = core.step(StatusSeen("b", status_of({"role": "primary", "epoch": 2, "pid": 101})), 3.0)
    assert 40310 in ids(out)
    (line,) = events_of(out, 40314)
    assert line == {"pair": "a", "server": "a", "epoch": 1, "other": "b", "newer": 2}
    assert Demote("a") in out
    # In flight: not asked twice.
    again = core.step(StatusSeen("a", status_of({"role": "primary", "epoch": 1, "pid": 100})), 3.1)
    assert not any(isinstance(a, Demote) for a in again)
    # Refused: logged, and asked again at the next status that still shows both.
    failed = core.step(DemoteDone("a", False, "no answer in time"), 3.2)
    assert events_of(failed, 40503)[0]["action"] == "step-down"
    again = core.step(StatusSeen("a", status_of({"role": "primary", "epoch": 1, "pid": 100})), 4.0)
    assert Demote("a") in again
    done = core.step(DemoteDone("a", True, ""), 4.1)
    assert not any(isinstance(a, Promote) for a in done)  # not a switchover
    back = core.step(StatusSeen("a", status_of({"role": "backup", "epoch": 2, "pid": 100})), 4.2)
    assert not any(isinstance(a, Demote) for a in back)


def test_the_newer_epoch_is_never_told_to_step_down(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)
    core.step(StatusSeen("a", status_of({"role": "primary", "epoch": 5, "pid": 100})), 1.0)
    out = core.step(StatusSeen("b", status_of({"role": "primary", "epoch": 4, "pid": 101})), 2.0)
    assert Demote("b") in out
    assert Demote("a") not in out


def test_equal_epochs_or_a_paused_pair_step_nobody_down(tmp_path: Path) -> None:
    core = core_with_primary(tmp_path)
    out = core.step(StatusSeen("b", status_of({"role": "primary", "epoch": 1, "pid": 101})), 2.0)
    assert 40310 in ids(out)
    assert not any(isinstance(a, Demote) for a in out)
    paused = core_with_primary(tmp_path)
    paused.step(OperatorPause("a", "op"), 1.0)
    out = paused.step(StatusSeen("b", status_of({"role": "primary", "epoch": 2, "pid": 101})), 2.0)
    assert 40310 in ids(out)
    assert not any(isinstance(a, Demote) for a in out)


def test_a_primary_back_while_a_promotion_was_asked_cancels_the_failover(
    tmp_path: Path,
) -> None:
    core = SupervisorCore(pair_settings(tmp_path, "failover-wait = 0\n"), random.Random(1))
    core.step(ProcessStarted("a", 100), 0.0)
    core.step(LinkUp("a", status_of({"role": "primary", "epoch": 1, "pid": 100})), 0.1)
    core.step(ProcessStarted("b", 101), 0.1)
    core.step(LinkUp("b", status_of({"role": "backup", "epoch": 1, "pid": 101})), 0.2)
    asked = core.step(LinkLost("a", "closed by peer"), 1.0)
    assert Promote("b", force=False) in asked  # at once (failover-wait 0)
    core.step(
        LinkUp("a", status_of({"role": "primary", "epoch": 1, "pid": 100})), 1.5
    )  # back, while asked
    out = core.step(PromoteDone("b", None, "lease-held: 'a' holds a valid lease"), 1.6)
    assert 40303 in ids(out)
    assert core.pairs["a"].failover is None
    assert core.next_deadline() is None


# -- fence-after: from the lease on SQLite -----------------------------------------------


def lease_status(pid: int, role: str, ttl: float | None, engine: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"role": role, "epoch": 1, "serial": 5, "pid": pid}
    if ttl is not None:
        status["lease_ttl"] = ttl
    if engine is not None:
        status["engine"] = engine
    return status


def core_on(
    tmp: Path, ttl: float | None, engine: str | None, extra: str = "failover-wait = 2\n"
) -> SupervisorCore:
    core = SupervisorCore(pair_settings(tmp, extra), random.Random(1))
    core.step(Booted(), 0.0)
    core.step(ProcessStarted("a", 100), 0.0)
    core.step(LinkUp("a", status_of(lease_status(100, "primary", ttl, engine))), 0.1)
    core.step(ProcessStarted("b", 101), 0.1)
    core.step(LinkUp("b", status_of(lease_status(101, "backup", ttl, engine))), 0.2)
    return core


def test_the_default_fence_after_follows_the_lease_on_sqlite(tmp_path: Path) -> None:
    core = core_on(tmp_path, 3.0, "sqlite")  # failover-wait is 2 s in these files
    core.step(LinkLost("a", "ADDP timeout"), 10.0)
    assert core.fence_after("a") == 3.0
    assert 10.0 + 3.0 in (core.next_deadline(), *_deadlines_until(core, 13.0))
    assert Fence("a", 100) in core.step(Tick(), 13.0)


@pytest.mark.parametrize("engine", ["sqlite", "postgre"])
def test_a_promotion_hanging_on_sqlite_fences_the_silent_primary_at_once(
    tmp_path: Path, engine: str
) -> None:
    """SQLite: a silent primary stopped inside a transaction holds the write lock, so the
    backup's lease take waits (it is a few ms otherwise); unanswered for PROMOTE_HANG, the
    primary is fenced then, not lease-ttl after the silence (PostgreSQL: no such lock)."""
    core = core_on(tmp_path, 3.0, engine, "failover-wait = 0\n")
    out = core.step(LinkLost("a", "ADDP timeout"), 10.0)
    assert Promote("b", force=False) in out
    hang = 10.0 + proof.PROMOTE_HANG
    assert not any(isinstance(a, Fence) for a in core.step(Tick(), hang - 0.01))
    out = core.step(Tick(), hang)
    if engine == "sqlite":
        assert Fence("a", 100) in out
        assert events_of(out, 40312)[0]["after"] == pytest.approx(proof.PROMOTE_HANG)
    else:
        assert not any(isinstance(a, Fence) for a in out)


def test_an_answered_promotion_restarts_the_hang_clock(tmp_path: Path) -> None:
    core = core_on(tmp_path, 3.0, "sqlite", "failover-wait = 0\n")
    core.step(LinkLost("a", "ADDP timeout"), 10.0)
    core.step(PromoteDone("b", None, "lease-held: 'a' holds a valid lease"), 10.05)
    retried = 10.05 + 0.1  # promote-retry's default
    assert Promote("b", force=False) in core.step(Tick(), retried)
    assert not any(isinstance(a, Fence) for a in core.step(Tick(), 10.0 + proof.PROMOTE_HANG))
    assert Fence("a", 100) in core.step(Tick(), retried + proof.PROMOTE_HANG)


def _deadlines_until(core: SupervisorCore, end: float) -> list[float]:
    seen = []
    while (d := core.next_deadline()) is not None and d < end:
        seen.append(d)
        for a in core.step(Tick(), d):
            if isinstance(a, Promote):
                core.step(PromoteDone(a.server, None, "db-unavailable: database is locked"), d)
    seen.append(core.next_deadline() or end)
    return seen


def test_an_explicit_fence_after_wins_and_unknown_keeps_the_fallback(tmp_path: Path) -> None:
    assert core_on(tmp_path, 3.0, "sqlite", "fence-after = 7\n").fence_after("a") == 7.0
    assert core_on(tmp_path, 3.0, "sqlite", "fence-after = 0\n").fence_after("a") == 0.0
    assert core_on(tmp_path, 3.0, "sqlite", "failover-wait = 0\n").fence_after("a") == 3.0
    assert core_on(tmp_path, None, None).fence_after("a") == proof.FENCE_AFTER_FALLBACK
    assert core_on(tmp_path, 3.0, None).fence_after("a") == proof.FENCE_AFTER_FALLBACK
    assert core_on(tmp_path, None, "sqlite").fence_after("a") == proof.FENCE_AFTER_FALLBACK
    assert core_on(tmp_path, 3.0, "postgre").fence_after("a") == proof.FENCE_AFTER_FALLBACK
    assert core_on(tmp_path, 1.0, "sqlite").fence_after("a") == 2.0  # not before failover-wait
    # A lease that says nothing usable is "not said"; a wrong type is a malformed status
    # (the edge drops that link with the reason), never a number made up.
    assert parse_status({"lease_ttl": float("nan"), "engine": ""}) == ServerStatus()
    assert parse_status({"lease_ttl": 0}).lease_ttl is None
    for bad in ({"lease_ttl": "soon"}, {"engine": 7}, {"lease_ttl": True}):
        with pytest.raises(MalformedStatus, match=next(iter(bad))):
            parse_status(bad)


@given(
    ttl=st.floats(min_value=0.5, max_value=30.0),
    addp=st.floats(min_value=0.1, max_value=5.0),
    seen=st.floats(min_value=0.0, max_value=1.0),
    renewed=st.floats(min_value=0.0, max_value=1.0),
)
@settings(max_examples=60)
def test_a_stopped_sqlite_primary_is_failed_over_within_the_bound(
    ttl: float, addp: float, seen: float, renewed: float
) -> None:
    """Stopped at t0 inside a transaction (it keeps the write lock, the backup's promotions
    fail): failed over by lease-ttl + 2 x addp-timeout + 1 s, never fenced before its lease
    (renewed at most at t0) has expired."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = f"failover-wait = 0\naddp-timeout = {addp:.3f}\n"
        core = core_on(Path(tmp), ttl, "sqlite", extra)
    t0 = 100.0
    last_renewal = t0 - renewed * 0.3 * ttl
    detected = t0 + seen * 2 * addp  # ADDP notices the silence within two timeouts
    now, promoted_at, fenced_at = detected, None, None
    pending = list(core.step(LinkLost("a", "ADDP timeout"), detected)) + core.step(Tick(), detected)
    while promoted_at is None and now < t0 + 3600:
        for a in pending:
            if isinstance(a, Fence):
                fenced_at = now
            elif isinstance(a, Promote) and a.force:
                promoted_at = now + 0.05  # the forced take is immediate once the lock is free
            elif isinstance(a, Promote):
                core.step(PromoteDone("b", None, "db-unavailable: database is locked"), now + 0.01)
        pending = []
        if fenced_at is not None and core.members["a"].process != "down":
            pending = core.step(ProcessExited("a", 100, "killed by SIGKILL"), fenced_at + 0.01)
            continue
        deadline = core.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        pending = core.step(Tick(), now)
    assert fenced_at is not None
    assert promoted_at is not None
    assert fenced_at >= last_renewal + ttl, "fenced while its lease could still be valid"
    assert promoted_at - t0 <= ttl + 2 * addp + 1.0
