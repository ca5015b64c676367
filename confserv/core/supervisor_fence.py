"""The supervisor fence: a server refuses commands from an older supervisor.

Several supervisors may watch one installation; one is active, elected by a
supervisor lease with its own epoch (docs/design.md, "The supervisor is
fenced too"). Every command a supervisor sends carries that epoch. A server
keeps the newest supervisor epoch it has seen and refuses a command that
carries an older one, so a supervisor that lost its lease but has not yet
noticed cannot undo what the new one did. A command without an epoch (an
operator's ``cfgctl``) is admitted as before and changes nothing.

Pure: no I/O, no clock. The rule's property (tests/confserv/
test_supervisor_fence.py): over any sequence of epochs, the admitted ones
never decrease.
"""

from __future__ import annotations

from confserv.wire.errors import StaleSupervisorError


class SupervisorFence:
    """The newest supervisor epoch this server has seen, and the rule on it."""

    def __init__(self, newest: int = 0) -> None:
        if newest < 0:
            raise ValueError(f"a supervisor epoch is 0 or more, got {newest}")
        #: The newest supervisor epoch seen (0: none yet).
        self.newest = newest

    def admit(self, epoch: int | None) -> None:
        """Admit a command carrying ``epoch`` (``None``: no epoch, always admitted).

        An epoch newer than any seen becomes the newest. Raises
        :class:`StaleSupervisorError` for an epoch older than the newest; the
        fence is then unchanged and the command must do nothing.
        """
        if epoch is None:
            return
        if epoch < self.newest:
            raise StaleSupervisorError(
                f"supervisor epoch {epoch} is older than epoch {self.newest}, "
                "already seen here: a newer supervisor is active",
                epoch=epoch,
                newest=self.newest,
            )
        self.newest = epoch

    def observe(self, epoch: int) -> None:
        """Raise the newest epoch without a command (e.g. from the database's
        supervisor lease row at start-up); never lowers it."""
        self.newest = max(self.newest, epoch)
