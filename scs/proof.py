"""What the supervisor may conclude from what it saw: pure rules, no I/O, no clock.

- **Proof of death** is the exit of the very process the supervisor watches for
  a server (the one it started, or adopted through a pidfd), and only when
  that process is the one the server answered as: no link reports the server
  running as another pid. The exit of anything else (a duplicate start that
  failed at once because the ports were taken, a stale pid) proves nothing.
- **Fencing** (``fence-after``): when ``scs.conf`` does not set it, a silent
  primary whose servers run on SQLite is killed ``lease-ttl`` seconds after
  its silence was detected (never before ``failover-wait``): by then its lease
  has expired, so a backup that still cannot take over is blocked by the
  stopped process itself (it keeps SQLite's write lock). Otherwise, and while
  the servers do not say, the fallback :data:`FENCE_AFTER_FALLBACK`.
- **Split brain**: of two members reporting primary, the one with the older
  epoch steps down; with equal or unknown epochs the supervisor cannot tell
  which is right and chooses neither.
"""

from __future__ import annotations

from dataclasses import dataclass

#: fence-after when scs.conf does not set it and the servers' engine and lease are unknown.
FENCE_AFTER_FALLBACK = 10.0
#: Seconds a promotion may stay unanswered on SQLite before the silent primary is taken
#: to hold the database's write lock (a lease take is a few ms) and fenced at once.
PROMOTE_HANG = 0.3
#: Seconds a failover waits, after a watched primary's link was closed or reset by its
#: end, for the exit report that usually follows (see :func:`exit_grace`).
EXIT_GRACE = 0.1


@dataclass(frozen=True, slots=True)
class ExitVerdict:
    """What the exit of one pid means for its server.

    Attributes:
        proof: the server's own process died (proof of death).
        answered: and it is the process the server answered as (so, if the
            server answered as primary, the primary died: a forced failover).
        runs_as: the pid the server still runs as, when known (not proof).
        why: for a verdict that is not proof, the reason, for the log line.
    """

    proof: bool
    answered: bool = False
    runs_as: int | None = None
    why: str = ""


def judge_exit(
    server: str, pid: int, watched: int | None, reported: int | None, link: bool
) -> ExitVerdict:
    """The exit of ``pid``, for ``server`` watched as ``watched`` and last reported as ``reported``.

    ``reported`` is the pid the server's management link last answered with
    (``link``: that link is up now).
    """
    if watched is not None and pid != watched:
        return ExitVerdict(False, runs_as=watched, why=f"'{server}' is watched as pid {watched}")
    if reported is not None and reported != pid:
        how = "runs as" if link else "last answered as"
        return ExitVerdict(False, runs_as=reported, why=f"'{server}' {how} pid {reported}")
    if watched is None:
        return ExitVerdict(False, why=f"pid {pid} is not a process the supervisor watches")
    return ExitVerdict(True, answered=reported == pid)


def unwatched_why(pid: int, answer: int | None) -> str:
    """What follows when ``pid`` could not be watched and the server then answered ``answer``."""
    if answer == pid:
        return f"it still answers as pid {pid}: its exit cannot be seen (no proof of death)"
    if answer is not None:
        return f"it now answers as pid {answer}: watching that one"
    return "it does not answer either: taken as down and restarted (not proof of death)"


def may_fence(watched: int, reported: int | None, found: bool) -> bool:
    """Whether killing the watched process is killing the silent primary: the process that
    answered as it, or (``found``: adopted, found running) the server's own process when
    nothing answered at all, as after a restart of the supervisor while the primary was
    stopped. A copy started after the silence never answered and is not it."""
    return reported == watched or (reported is None and found)


def fence_delay(
    explicit: float | None, failover_wait: float, lease_ttl: float | None, engine: str | None
) -> float:
    """Seconds from the detection of a silent primary to its fencing (0: never fenced).

    An explicit ``fence-after`` wins. Otherwise, on SQLite with a known
    ``lease-ttl``: ``max(lease-ttl, failover-wait)``. Otherwise (PostgreSQL
    ends a stopped server's transaction by itself; or the servers do not say)
    :data:`FENCE_AFTER_FALLBACK`.
    """
    if explicit is not None:
        return explicit
    if engine == "sqlite" and lease_ttl is not None:
        return max(lease_ttl, failover_wait)
    return FENCE_AFTER_FALLBACK


def older_primary(epoch_a: int | None, epoch_b: int | None) -> int | None:
    """Which of two primaries steps down: 0 (the first) or 1, by the older epoch; None if unsure."""
    if not isinstance(epoch_a, int) or not isinstance(epoch_b, int) or epoch_a == epoch_b:
        return None
    return 0 if epoch_a < epoch_b else 1


def superseded(epoch: int | None, peer_up_as_primary: bool, peer_epoch: int | None) -> bool:
    """Whether a member last seen as primary at ``epoch`` was already replaced: its peer
    is up as primary at a newer epoch (its exit, learnt late from a returning agent,
    then ends a primary that had been failed over: nothing to fail over again)."""
    return (
        peer_up_as_primary
        and isinstance(epoch, int)
        and isinstance(peer_epoch, int)
        and peer_epoch > epoch
    )


def exit_grace(abrupt: bool, watched: bool) -> float:
    """How long, after the primary's link was lost, to wait before the first promotion
    without proof (:data:`EXIT_GRACE` or 0).

    A link closed or reset by its end (``abrupt``) of a process the supervisor
    watches (``watched``) most often means that process died, and its exit, proof
    of death, is reported within milliseconds (by its host's agent, or this host's
    pidfd). A promotion without proof sent at once could not succeed before the
    old lease expires anyway, and it would hold up the forced one behind it (the
    backup answers commands in turn: ~35 ms across hosts). A silence (an ADDP
    timeout) gets no grace: nothing is on its way.
    """
    return EXIT_GRACE if abrupt and watched else 0.0
