"""``lca -c FILE [-s SECTION]``: run the Local Control Agent of this host until SIGTERM or SIGINT.

Its processes keep running when it stops; started again, it finds them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the agent (trio, ssl) is imported when it runs: --version starts light
    from .config import AgentSettings

PROG = "lca"
app = typer.Typer(
    help="lca -c FILE [-s SECTION]: run this host's Local Control Agent until SIGTERM or "
    "SIGINT. Its processes keep running when it stops; started again, it finds them.",
    rich_markup_mode=None,
)


def _version(wanted: bool) -> None:
    """``--version``: the installed package's version, then exit."""
    if wanted:
        import importlib.metadata

        print(f"{PROG} {importlib.metadata.version('cfgha')}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    typer.Option("--version", is_eager=True, callback=_version, help="Show the version and exit."),
]


#: ``$NOTIFY_SOCKET``, taken out of the environment at start (the processes the agent
#: starts must not answer for it).
_NOTIFY_SOCKET: list[str] = []


def _notify_ready() -> None:
    """``READY=1`` to systemd (``Type=notify``) when ``$NOTIFY_SOCKET`` says where (the
    sd_notify protocol; confserv.logs.systemd is the same for the others: lca imports
    nothing of confserv)."""
    where = _NOTIFY_SOCKET.pop() if _NOTIFY_SOCKET else None
    if not where:
        return
    address = "\0" + where[1:] if where.startswith("@") else where
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


async def _run(settings: AgentSettings) -> None:
    import trio

    from .agent import Agent

    if (where := os.environ.pop("NOTIFY_SOCKET", None)) is not None:
        _NOTIFY_SOCKET.append(where)
    agent = Agent(settings.state_dir, settings.secret, settings.host_name)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: agent.run(
                    settings.port,
                    host=settings.listen_address,
                    ssl_context=settings.ssl_context,
                    task_status=task_status,
                )
            )
            logging.getLogger("lca").info(
                "agent of %s listening on %s:%d", settings.host_name, settings.listen_address, port
            )
            _notify_ready()
            async for signum in signals:
                logging.getLogger("lca").info("stopping: %s", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()


@app.command()
def serve(
    config: Annotated[Path, typer.Option("-c", "--config", help="The agent's file.")],
    section: Annotated[str, typer.Option("-s", "--section", help="Its section.")] = "lca",
    version: VersionOpt = False,
) -> None:
    """Run the agent from SECTION of the file."""
    import trio

    from .config import AgentConfigError, load_agent_settings

    try:
        settings = load_agent_settings(config, section)
    except AgentConfigError as exc:
        print(f"lca: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in settings.warnings:
        print(f"lca: {line}", file=sys.stderr)
    logging.basicConfig(  # dated, as the servers' and the supervisor's lines are
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger("lca").setLevel(logging.INFO)
    try:
        trio.run(_run, settings)
    except (OSError, BaseExceptionGroup) as caught:
        failed = _first_os_error(caught)
        if failed is None:
            raise
        print(
            f"lca: cannot listen on {settings.listen_address}:{settings.port}: "
            f"{failed.strerror or failed} (is another agent running?)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def _first_os_error(exc: BaseException) -> OSError | None:
    """The OSError of a failed listen, through the nurseries' exception groups."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _first_os_error(exc.exceptions[0])
    return None


def main() -> None:
    """Console-script entry point."""
    app()
