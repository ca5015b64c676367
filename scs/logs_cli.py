"""``scs history`` and ``scs events``: what the supervisor did, read from its files.

Neither asks the running supervisor: they read ``<state-dir>/failovers.jsonl``
(:mod:`scs.history_file`) and ``[scs] log-file``, so they work while it is
down too, and after it was restarted. ``scs events -f`` follows the event log
as ``tail -F`` does (through logrotate's moves and truncations).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, NoReturn, TextIO

import typer

from .history_file import HISTORY_NAME, read_history

if TYPE_CHECKING:
    from .config import ScsSettings
    from .history import FailoverRecord

#: How often ``scs events -f`` looks for new lines, seconds.
FOLLOW_POLL = 0.2

_FileOpt = Annotated[Path | None, typer.Option("--file", help="The scs.conf file.")]


def register_log_commands(app: typer.Typer, load: Callable[[Path | None], ScsSettings]) -> None:
    """Add ``history`` and ``events`` to ``app`` (``load`` reads -f/--file's scs.conf)."""

    @app.command()
    def history(
        file: Annotated[
            Path | None, typer.Option("-f", "--file", help="The scs.conf file.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines for scripts.")] = False,
        last: Annotated[int, typer.Option("-n", "--last", help="How many, newest last.")] = 20,
        pair: Annotated[str | None, typer.Option(help="Only this pair's.")] = None,
    ) -> None:
        """The failovers this supervisor saw: fault, cause, times, epochs (from its state-dir)."""
        settings = load(file)
        path = settings.state_dir / HISTORY_NAME
        try:
            records = read_history(path)
        except OSError as exc:
            _fail(f"cannot read the failover history {path}: {exc.strerror or exc}")
        records = [r for r in records if pair is None or r.pair == pair][-max(last, 0) :]
        if as_json:
            for record in records:
                print(json.dumps(record.to_json(), sort_keys=True))
            return
        if not records:
            print(f"no failover recorded in {path}")
            return
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(history_table(records))

    @app.command()
    def events(
        config: Annotated[
            Path | None, typer.Argument(help="The scs.conf file (or --file).", show_default=False)
        ] = None,
        file: _FileOpt = None,
        follow: Annotated[
            bool, typer.Option("-f", "--follow", help="Keep printing new lines, as tail -F.")
        ] = False,
        lines: Annotated[int, typer.Option("-n", "--lines", help="How many to show first.")] = 50,
    ) -> None:
        """The supervisor's event log ([scs] log-file); -f follows it (here -f is --follow)."""
        settings = load(file or config)
        path = settings.log_file
        if path is None:
            _fail(f"{settings.file}: [scs] log-file = false: no event log on disk", 2)
        if not path.exists() and not follow:
            _fail(f"no event log at {path} yet (has scs -f {settings.file} run here?)")
        try:
            print_events(path, lines=lines, follow=follow, out=sys.stdout)
        except KeyboardInterrupt:
            raise SystemExit(0) from None
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)  # (a closed pipe: quiet, as tail)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0) from None
        except OSError as exc:
            _fail(f"cannot read the event log {path}: {exc.strerror or exc}")


def history_table(records: list[FailoverRecord]) -> object:
    """A rich table of ``records``: one row per failover, newest last."""
    from rich.table import Table

    table = Table(title="Failover history")
    for column in ("fault at", "pair", "primary", "seen", "cause", "epoch", "promoted", "healthy"):
        table.add_column(column)
    table.add_column("outcome")
    for r in records:
        moved = f"{r.old_primary or '-'} -> {r.new_primary}" if r.new_primary else r.old_primary
        promoted = f"{r.promote_ms:.0f} ms" if r.promote_ms is not None else "-"
        healthy = f"+{r.healthy_at - r.fault_at:.1f} s" if r.healthy_at is not None else "-"
        table.add_row(
            _when(r.fault_at),
            r.pair,
            moved or "-",
            f"{r.seen} ({r.detail})",
            r.cause or "-",
            str(r.epoch) if r.epoch is not None else "-",
            promoted,
            healthy,
            r.outcome,
        )
    return table


def print_events(path: Path, *, lines: int, follow: bool, out: TextIO) -> None:
    """The last ``lines`` lines of ``path``; with ``follow``, then every new line until
    interrupted, reopening ``path`` when it was replaced or truncated (rotation)."""
    while follow and not path.exists():
        time.sleep(FOLLOW_POLL)
    f = path.open("rb")
    try:
        first = f.readlines()
        for line in first[-lines:] if lines > 0 else []:
            out.write(line.decode("utf-8", errors="replace"))
        out.flush()
        while follow:
            line = f.readline()
            if line.endswith(b"\n"):
                out.write(line.decode("utf-8", errors="replace"))
                out.flush()
                continue
            if line:  # half a line: the rest is being written
                f.seek(-len(line), os.SEEK_CUR)
            if _replaced(path, f):
                f.close()
                f = path.open("rb")
                continue
            time.sleep(FOLLOW_POLL)
    finally:
        f.close()


def _replaced(path: Path, f: BinaryIO) -> bool:
    """Whether ``path`` is now another file than ``f`` (moved away), or shorter (cut)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # moved, not yet created again: wait for it
    mine = os.fstat(f.fileno())
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or now.st_size < f.tell()


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"scs: {message}", file=sys.stderr)
    raise SystemExit(code)
