"""What the supervisor's core is told: typed observations, one per thing that happened (pure).

:meth:`scs.core.SupervisorCore.step` takes one of these and the current time.
They are made at the edge (:mod:`scs.supervisor`, a simulation, a test): a
server's status arrives as a :class:`~scs.status.ServerStatus`, parsed there,
never as a wire dict.
"""

from __future__ import annotations

from dataclasses import dataclass

from .status import ServerStatus


@dataclass(frozen=True, slots=True)
class Booted:
    """The supervisor has just started: start the autostart servers, in order."""


@dataclass(frozen=True, slots=True)
class ProcessStarted:
    """Process ``pid`` runs for ``server`` and is watched: started by the supervisor, or
    found running and adopted (its exit will be seen; ``adopted``)."""

    server: str
    pid: int
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The server's command could not be run (``reason``: one line)."""

    server: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessExited:
    """Process ``pid``, watched for ``server``, has ended (``how``: exit code or signal)."""

    server: str
    pid: int
    how: str


@dataclass(frozen=True, slots=True)
class AdoptionFailed:
    """``pid`` could not be watched (``reason``); asked again, the server answered as
    ``answer`` (None: no answer). Never an exit: nothing was seen to end."""

    server: str
    pid: int
    answer: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The management link to ``server`` is up; ``status`` is its first answer."""

    server: str
    status: ServerStatus


@dataclass(frozen=True, slots=True)
class StatusSeen:
    """A status answer or role push from ``server`` over its management link."""

    server: str
    status: ServerStatus


@dataclass(frozen=True, slots=True)
class LinkLost:
    """The management link to ``server`` ended (``reason``: closed, ADDP timeout, ...).

    ``abrupt``: the peer's end closed it or reset it (its process may have died:
    an exit report usually follows), as opposed to a silence (ADDP timeout).
    """

    server: str
    reason: str
    abrupt: bool = False


@dataclass(frozen=True, slots=True)
class PromoteDone:
    """The answer to a Promote: ``status`` when the server became primary, else None and the
    refusal's ``reason``."""

    server: str
    status: ServerStatus | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DemoteDone:
    """The answer to a Demote: ``ok``, or the failure's ``reason``."""

    server: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OperatorSwitchover:
    """An operator (``who``) asks for a planned switchover of ``pair``."""

    pair: str
    who: str


@dataclass(frozen=True, slots=True)
class OperatorPause:
    """An operator pauses ``pair``: no automatic action until resumed."""

    pair: str
    who: str


@dataclass(frozen=True, slots=True)
class OperatorResume:
    """An operator resumes ``pair``: automatic actions again."""

    pair: str
    who: str


@dataclass(frozen=True, slots=True)
class OperatorStop:
    """An operator stops ``server``: it is stopped and not restarted, promoted, adopted,
    fenced or demoted until an operator starts it again."""

    server: str
    who: str


@dataclass(frozen=True, slots=True)
class OperatorStart:
    """An operator starts ``server`` (clearing an operator stop)."""

    server: str
    who: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed: do what is due (the core's :meth:`next_deadline` said when)."""


#: Everything :meth:`scs.core.SupervisorCore.step` accepts.
Observation = (
    Booted
    | ProcessStarted
    | StartFailed
    | ProcessExited
    | AdoptionFailed
    | LinkUp
    | StatusSeen
    | LinkLost
    | PromoteDone
    | DemoteDone
    | OperatorSwitchover
    | OperatorPause
    | OperatorResume
    | OperatorStop
    | OperatorStart
    | Tick
)
