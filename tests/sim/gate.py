"""A simulated process's run state as its I/O sees it: running, paused (SIGSTOP) or dead.

Every simulated stream and database call of a process passes its :class:`Gate`:
while the process is paused the call waits (the process does not run, so it
neither sends nor reads), and once it is dead the call fails at once (a
killed process does nothing more, not even its clean-up).
"""

from __future__ import annotations

import trio


class ProcessDead(Exception):
    """The simulated process is dead: its I/O fails (a SIGKILL leaves no clean-up)."""


class Gate:
    """Running, paused or dead (see module docstring)."""

    __slots__ = ("_resumed", "dead", "died", "paused")

    def __init__(self) -> None:
        self.paused = False
        self.dead = False
        self._resumed = trio.Event()
        #: Set when the process dies: waits of its I/O end at once.
        self.died = trio.Event()

    def pause(self) -> None:
        """SIGSTOP: I/O waits from now on."""
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: waiting I/O goes on."""
        if self.paused:
            self.paused = False
            resumed, self._resumed = self._resumed, trio.Event()
            resumed.set()

    def kill(self) -> None:
        """SIGKILL: every I/O of the process fails from now on."""
        self.dead = True
        self.died.set()
        self.resume()

    async def wait_running(self) -> None:
        """A checkpoint; waits while paused. Raises :class:`ProcessDead` once dead."""
        if self.paused:
            while self.paused:
                await self._resumed.wait()
        else:
            await trio.lowlevel.checkpoint()
        if self.dead:
            raise ProcessDead("the process is dead")
