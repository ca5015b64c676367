"""One pair's supervision state: its machine, the failover under way, the shared helpers (pure).

:class:`PairBase` is what the pair's decisions (:class:`scs.failover.PairFailover`,
then :class:`scs.pair_control.PairControl`, the class the core uses) share:
the two members, the pair's :class:`~scs.pair_machine.PairMachine`, the
:class:`Failover` under way, and the few helpers both halves need.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import events, proof
from .actions import Action, Redirect
from .config import PairSpec
from .pair_machine import PairEvent, PairMachine, PairState
from .state import Member, emit


@dataclass
class Failover:
    """The failover under way in a pair (there is one exactly while the pair's state is
    ``FAILOVER_WAITING`` or ``FAILOVER_PROMOTING``).

    Attributes:
        target: the member to promote; ``old``: the primary it replaces.
        force: with proof of death (a forced promotion).
        detected_at: when the fault was seen; ``promote_at``: when to (re)try.
        decided: the decision line (40304/40305/40313) is logged.
        fenced: the fencing deadline has passed (fenced, or said why not).
        fence_unarmed: it passed while no process of the old primary was watched: the
            fencing is looked at again once one is adopted (a supervisor restarted while
            the primary was stopped finds it only then).
        old_pid: the pid the old primary answered as (its exit is proof).
        untold: the silence line (40302) owed, with its reason: held while the exit
            of a primary whose link its end closed may still come (then the story is
            a death, 40301, and the silence is never told).
        promote_sent_at: when the (not forced) promotion still unanswered was sent: on
            SQLite one that hangs means the silent primary holds the write lock.
    """

    target: str
    force: bool
    detected_at: float
    promote_at: float
    decided: bool = False
    old: str = ""
    fenced: bool = False
    fence_unarmed: bool = False
    old_pid: int | None = None
    untold: str | None = None
    #: When the promotion now unanswered was sent (None: none is out).
    promote_sent_at: float | None = None


class PairBase:
    """One pair's state, and what the decisions share (see module docstring)."""

    def __init__(self, spec: PairSpec, members: dict[str, Member], proxies: list[Member]) -> None:
        self.spec = spec
        self.machine = PairMachine(spec.name)
        self.a, self.b = (members[name] for name in spec.members)
        self.proxies = proxies
        self.failover: Failover | None = None
        self.switchover_result = ""
        self.owes_healthy = False  # promoted, not yet seen healthy: 40309 is due
        self.seen_healthy = False  # 40316 once, the first time (at start-up, or a take-over)
        self.split_alarmed = False
        self.stepping_down: str | None = None  # a split brain's older primary, told to
        self.no_primary_since: float | None = None

    # -- what it is -------------------------------------------------------------

    @property
    def name(self) -> str:
        """The pair's name."""
        return self.spec.name

    @property
    def state(self) -> PairState:
        """Its state in the machine's table."""
        return self.machine.state

    @property
    def paused(self) -> bool:
        """No automatic action until resumed."""
        return self.machine.paused

    def peer(self, m: Member) -> Member:
        """The other member."""
        return self.b if m is self.a else self.a

    def primary(self) -> Member | None:
        """The member connected and last seen as primary (None if none)."""
        return next((m for m in (self.a, self.b) if m.up_as("primary")), None)

    def locks_database(self, m: Member) -> bool:
        """Whether a silent ``m`` can block its backup's lease take by holding the
        database's write lock (SQLite: a process stopped inside a transaction)."""
        engine = m.engine if m.engine is not None else self.peer(m).engine
        return engine == "sqlite"

    def fence_after(self, m: Member) -> float:
        """Seconds from detecting ``m`` silent to fencing it (:func:`scs.proof.fence_delay`):
        lease and engine as it last reported them, else as its peer did."""
        peer = self.peer(m)
        return proof.fence_delay(
            m.spec.fence_after,
            m.spec.failover_wait,
            m.lease_ttl if m.lease_ttl is not None else peer.lease_ttl,
            m.engine if m.engine is not None else peer.engine,
        )

    def _member(self, name: str) -> Member:
        return self.a if name == self.a.name else self.b

    def _end_failover(self, event: PairEvent) -> None:
        self.machine.fire(event)
        self.failover = None

    def _redirect(self, m: Member, out: list[Action]) -> None:
        if m.operator_stopped:
            return
        for proxy in self.proxies:
            if not proxy.operator_stopped:
                out.append(Redirect(proxy.name, m.name))

    def _switchover_failed(self, reason: str, owner: Member | None, out: list[Action]) -> None:
        self.machine.fire(PairEvent.SWITCHOVER_ENDED)
        self.switchover_result = f"failed: {reason}"
        emit(out, events.SWITCHOVER_FAILED, owner, pair=self.name, reason=reason)
