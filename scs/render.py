"""Pure functions from the supervisor's view to rich renderables; only the CLI prints."""

from __future__ import annotations

from typing import Any

from rich.table import Table

_ROLE_STYLE = {"primary": "bold green", "backup": "cyan", "proxy": "magenta"}
_STATE_STYLE = {
    "running": "green",
    "unreachable": "bold red",
    "down": "red",
    "restarting": "yellow",
    "stopped": "dim",
}


def status_table(rows: list[dict[str, Any]], title: str = "Solution Control Server") -> Table:
    """One row per server: its host (- for the supervisor's own), pair, role, epoch, pid,
    state, last heard, restarts, last event."""
    table = Table(title=title)
    for column in (
        "server",
        "host",
        "pair",
        "role",
        "epoch",
        "serial",
        "pid",
        "state",
        "heard",
        "restarts",
        "last event",
    ):
        table.add_column(column)
    for row in rows:
        role = row.get("role") or "?"
        state = row.get("state") or "?"
        heard = row.get("last_heard")
        table.add_row(
            str(row["section"]),
            str(row.get("host") or "-"),
            str(row.get("pair") or "-") + (" (paused)" if row.get("paused") else ""),
            f"[{_ROLE_STYLE.get(role, '')}]{role}[/]" if role in _ROLE_STYLE else role,
            str(row.get("epoch") if row.get("epoch") is not None else "-"),
            str(row.get("serial") if row.get("serial") is not None else "-"),
            str(row.get("pid") or "-"),
            f"[{_STATE_STYLE.get(state, '')}]{state}[/]" if state in _STATE_STYLE else state,
            "-" if heard is None else f"{heard:.1f} s ago",
            str(row.get("restarts", 0)),
            str(row.get("last_event") or ""),
        )
    return table


def supervisor_title(described: dict[str, Any]) -> str:
    """The table's title: this supervisor, active or standby, and the others.

    ``described``: :meth:`scs.supervisor.Supervisor.describe`'s map."""
    mode = described.get("mode") or "?"
    if mode == "single":
        return "Solution Control Server"
    name = described.get("name") or "?"
    if mode == "active":
        epoch = described.get("epoch")
        head = f"Solution Control Server '{name}': [bold green]active[/], epoch {epoch}"
    else:
        active = described.get("active")
        held = (
            f"active: '{active['name']}' at epoch {active['epoch']}"
            if active
            else "no active supervisor"
        )
        head = f"Solution Control Server '{name}': [cyan]{mode}[/] ({held})"
    standby = [s["name"] for s in described.get("supervisors", []) if s.get("mode") == "standby"]
    if standby:
        head += f"; standby: {', '.join(sorted(standby))}"
    if described.get("database"):
        head += f"; [bold red]database {described['database']}[/]"
    return head
