"""The agent's decisions: which supervisor it obeys, and which exits it still owes: pure.

Two promises rest on this object:

- **An exit is told until it is acknowledged.** Every exit of a process the
  agent started is kept (:meth:`AgentCore.exited`) and pushed to every
  supervisor link that is up, again to each link that comes up later
  (:meth:`AgentCore.connected`), until a supervisor acknowledges it
  (:meth:`AgentCore.acknowledged`): a supervisor that was away, or a standby
  that takes over, still learns of every death. Exits are told in the order
  they happened.
- **No command from an older supervisor epoch.** The agent remembers the
  newest supervisor epoch it has seen (kept across restarts by the glue) and
  refuses every command that carries an older one, so a supervisor that lost
  its lease cannot start, stop or signal anything here (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import Request, StaleSupervisorError


@dataclass(frozen=True, slots=True)
class Exit:
    """Process ``pid`` of ``name`` ended, ``how`` ("exit code 1", "killed by SIGKILL")."""

    name: str
    pid: int
    how: str


@dataclass(slots=True)
class AgentCore:
    """The supervisor epoch seen and the exits owed (see the module docstring)."""

    epoch: int = 0
    _owed: dict[tuple[str, int], Exit] = field(default_factory=dict)

    def admit(self, request: Request) -> bool:
        """Check ``request``'s supervisor epoch; True when it raised the newest seen (the
        glue then persists :attr:`epoch` before acting).

        Raises:
            StaleSupervisorError: the request comes from an older supervisor epoch.
        """
        if request.epoch < self.epoch:
            raise StaleSupervisorError(
                f"supervisor epoch {request.epoch} is older than epoch {self.epoch}, "
                "already seen here: a newer supervisor is active"
            )
        raised = request.epoch > self.epoch
        self.epoch = request.epoch
        return raised

    def exited(self, name: str, pid: int, how: str) -> Exit:
        """Process ``pid`` of ``name`` ended: the exit to push to every link up."""
        gone = Exit(name, pid, how)
        self._owed.setdefault((name, pid), gone)
        return self._owed[name, pid]

    def connected(self) -> list[Exit]:
        """A supervisor link came up: the exits to push to it, oldest first."""
        return list(self._owed.values())

    def acknowledged(self, name: str, pid: int) -> bool:
        """A supervisor has the exit of ``pid`` of ``name``; True when it was owed
        (the glue then forgets its records)."""
        return self._owed.pop((name, pid), None) is not None

    @property
    def owed(self) -> list[Exit]:
        """The exits not acknowledged yet, oldest first."""
        return list(self._owed.values())
