"""``cfgctl promote --force``: ask first while the target's primary answered recently.

A forced promotion takes the lease at once, without waiting for the primary
to let it go: right when the primary is dead, two writing primaries (until
the old one is fenced) when it is not. The target (a backup) knows whether
its primary is alive: its management ``status`` names the primary it follows
(``following``) while the replication stream is up, and servers that report
it give ``primary_heard_ago``, the seconds since the primary last answered
(and ``primary_heard_from``, its name, once the stream has ended).
A primary heard within the lease's TTL (``lease_ttl``) counts as recent.

While the primary is recent: a question on a terminal (``yes`` goes on),
one refusal line and exit status 2 otherwise, unless ``--yes`` was given.
A primary not heard of for a while: no question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Seconds a primary heard of counts as recent when the status gives no lease_ttl.
DEFAULT_RECENT = 10.0


@dataclass(frozen=True, slots=True)
class RecentPrimary:
    """The primary the target heard from recently: its name, and how long ago (if known)."""

    target: str
    primary: str
    ago: float | None

    def heard(self) -> str:
        """``primary 'X' answered N s ago`` (or ``is answering`` when N is not known)."""
        if self.ago is None:
            return f"primary '{self.primary}' is answering ('{self.target}' follows its stream)"
        return f"primary '{self.primary}' answered {self.ago:.1f} s ago"

    def question(self) -> str:
        """What a terminal is asked."""
        return (
            f"{self.heard()}; forcing makes '{self.target}' primary without waiting for it "
            "to let go of the lease, and both may serve until it is fenced. "
            "Type yes to go on: "
        )

    def refusal(self) -> str:
        """The one line when there is no terminal to ask and no --yes."""
        return (
            f"promote --force: {self.heard()}; give --yes to force anyway, or promote "
            "without --force to wait for the lease"
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def recent_primary(status: Mapping[str, Any]) -> RecentPrimary | None:
    """The primary ``status`` (the target's management answer) heard from recently, if any."""
    target = str(status.get("name") or "the server")
    following = status.get("following")
    ago = _number(status.get("primary_heard_ago"))
    recent = _number(status.get("lease_ttl")) or DEFAULT_RECENT
    if ago is not None:
        if ago >= recent:
            return None
        primary = following or status.get("primary_heard_from") or status.get("primary") or "?"
        return RecentPrimary(target, str(primary), ago)
    if following:
        return RecentPrimary(target, str(following), None)
    return None
