"""Start-up ordering: which servers start when the supervisor starts, and in what order (pure).

The first member of a pair (in file order) is meant as primary: starting it
first lets it take the lease, and its peer then joins as backup. The second
is started once the first answers its management port, or has gone down, or
after :data:`SECOND_MEMBER_DELAY` seconds without an answer, whichever comes
first. Servers outside pairs (proxies) start at once.
"""

from __future__ import annotations

from .actions import Start
from .config import ScsSettings

#: Seconds a pair's second member waits for the first to answer before starting anyway.
SECOND_MEMBER_DELAY = 10.0


class StartupOrder:
    """The servers held back at start-up, each until its deadline (see module docstring)."""

    def __init__(self, settings: ScsSettings) -> None:
        self.settings = settings
        self._second_of = {p.members[0]: p.members[1] for p in settings.pairs}
        self._first_of = {p.members[1]: p.members[0] for p in settings.pairs}
        self.waiting: dict[str, float] = {}  # held-back second member -> when to start anyway

    def boot(self, now: float) -> list[Start]:
        """The supervisor starts: start every autostart server but the held-back ones."""
        out: list[Start] = []
        servers = self.settings.servers
        for name, spec in servers.items():
            if not spec.autostart:
                continue
            first = self._first_of.get(name)
            if first is not None and servers[first].autostart:
                self.waiting[name] = now + SECOND_MEMBER_DELAY
                continue
            out.append(Start(name, "autostart"))
        return out

    def first_settled(self, server: str) -> list[Start]:
        """``server`` answered, or is down: start its peer if that was held back for it."""
        peer = self._second_of.get(server)
        if peer is None or self.waiting.pop(peer, None) is None:
            return []
        return [Start(peer, "autostart, after its peer")]

    def forget(self, server: str) -> None:
        """``server`` is no longer held back (it runs already, or an operator stopped it)."""
        self.waiting.pop(server, None)

    def is_waiting(self, server: str) -> bool:
        """Whether ``server`` is held back until its peer answers."""
        return server in self.waiting

    def due(self, server: str, now: float) -> bool:
        """Whether ``server``'s wait for its peer is over at ``now`` (it is then no longer
        held back: start it, unless it runs already)."""
        deadline = self.waiting.get(server)
        if deadline is None or deadline > now:
            return False
        del self.waiting[server]
        return True

    def next_deadline(self) -> float | None:
        """When a held-back server is next due."""
        return min(self.waiting.values(), default=None)
