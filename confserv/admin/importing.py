"""``cfgctl import FILE``: through the resilient client, with progress, safe to run again.

The objects are written through
:func:`~confserv.client.resilient.open_resilient_client`, so a failover of the
pair during an import is followed: the client reconnects to whichever server
serves, and a write cut off by it is checked and done again
(:func:`~confserv.admin.transfer.import_all`). On a terminal a rich progress
bar runs on stderr; otherwise nothing is shown until the end. The import is
cut off when no primary serves for ``wait`` seconds, or by Ctrl-C (SIGINT):
then one line says how many objects were done, of how many, and that running
the same import again is safe (objects are matched by type and name).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import trio

from confserv.client.resilient import open_resilient_client
from confserv.wire.errors import NoServerError, first_in_group

from .transfer import import_all, import_items

if TYPE_CHECKING:
    from confserv.client.session import Address
    from confserv.wire.tls import ClientTls

#: Said after every cut-off import (and true: see transfer.import_all).
SAFE_AGAIN = "running the same import again is safe (objects are matched by type and name)"
#: Seconds between two attempts on a server that does not answer.
RECONNECT_EVERY = 0.5


class ImportCutOff(Exception):
    """The import stopped before its end; the message is the line to show."""


@dataclass(frozen=True, slots=True)
class ImportRun:
    """Where and how to import: the servers, who logs in, how long to wait for a primary."""

    servers: Sequence[Address]
    user: str
    password: str
    tls: ClientTls | None
    wait: float


@contextmanager
def _progress(total: int, err: TextIO) -> Iterator[Callable[[int], None]]:
    """A function told the objects done: a rich progress bar when ``err`` is a terminal."""
    if not err.isatty():
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "importing",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=err),
    )
    task = bar.add_task("import", total=total)
    with bar:
        yield lambda done: bar.update(task, completed=done)


def run_import(document: Any, run: ImportRun, err: TextIO = sys.stderr) -> dict[str, int]:
    """Import ``document``; its counts by action.

    Raises:
        ImportCutOff: no primary within ``run.wait`` s, or SIGINT, after the
            import began (the line says how far it got).
        FieldValueError: the document is not an export.
        ConfServError, OSError: the first connection failed (nothing was written).
    """
    total = len(import_items(document))
    done = [0]
    connected = [False]

    async def go(tell: Callable[[int], None]) -> dict[str, int]:
        def on_done(count: int) -> None:
            done[0] = count
            tell(count)

        async with open_resilient_client(
            run.servers,
            app="cfgctl",
            app_type="cfgctl",
            user=run.user,
            password=run.password,
            tls=run.tls,
            reconnect_timeout=RECONNECT_EVERY,
            give_up_after=run.wait,
            connect_timeout=min(run.wait, 10.0),
        ) as client:
            connected[0] = True
            return await import_all(client, document, on_done)

    async def main(tell: Callable[[int], None]) -> dict[str, int] | None:
        result: list[dict[str, int]] = []
        failed: list[BaseException] = []
        with trio.open_signal_receiver(signal.SIGINT) as interrupts:
            async with trio.open_nursery() as nursery:

                async def work() -> None:
                    try:
                        result.append(await go(tell))
                    except Exception as exc:  # carried out of the nursery unwrapped
                        found = first_in_group(exc, NoServerError)
                        failed.append(exc if found is None else found)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(work)
                async for _ in interrupts:
                    nursery.cancel_scope.cancel()
        if failed:
            raise failed[0]
        return result[0] if result else None

    with _progress(total, err) as tell:
        try:
            counts = trio.run(main, tell)
        except NoServerError as exc:
            if not connected[0]:
                raise
            cut = f"no primary answered within {run.wait:g} s"
            raise ImportCutOff(_line(done[0], total, cut)) from exc
    if counts is None:
        raise ImportCutOff(_line(done[0], total, "interrupted"))
    return counts


def _line(done: int, total: int, why: str) -> str:
    return f"import cut off after {done} of {total} objects ({why}); {SAFE_AGAIN}"
