"""The supervisor's management links to its servers: one watch link each, and commands on it.

:class:`ServerLinks` keeps each server's authenticated watch link up (ADDP on,
with the section's options) and reports what it sees as typed observations
(link up with the status, role pushes and statuses, link loss and whether the
server's end closed it); commands go on that link, so a crowd of
unauthenticated connections filling a server's management port cannot keep a
promotion out (bench_security's finding), and on a fresh connection only when
the link had ended before the command was sent. A server's refusal of a command
as coming from an older supervisor epoch is told to ``superseded``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from addp import AddpTimeout, LinkBroken, LinkClosedByPeer, LinkEnded
from confserv.client.session import open_management
from confserv.wire.auth import Purpose
from confserv.wire.errors import ConfServError, NotSentError, RequestError, StaleSupervisorError

from .config import ScsSettings
from .observations import LinkLost, LinkUp, StatusSeen
from .status import MalformedStatus, ServerStatus, parse_status

#: Seconds between attempts to reach a management port that does not answer.
RECONNECT = 0.05


class ServerLinks:
    """The watch link of every server, and the commands sent on them."""

    def __init__(
        self,
        settings: ScsSettings,
        observe: Callable[[str, LinkUp | StatusSeen | LinkLost], None],
        superseded: Callable[[int], None],
    ) -> None:
        self.settings = settings
        self.observe = observe
        self.superseded = superseded
        #: The authenticated watch link of each server while it is up.
        self._links: dict[str, Any] = {}

    async def watch(self, name: str) -> None:
        """Keep ``name``'s watch link up for ever, reporting link up, statuses and loss."""
        spec = self.settings.servers[name]
        while True:
            up = False
            try:
                async with open_management(
                    spec.host,
                    spec.management_port,
                    spec.management_secret,
                    expect=spec.section,
                    purpose=Purpose.MANAGEMENT,
                    addp=spec.addp,
                    timeout=max(2.0, spec.addp.local_timeout * 2),
                    tls=spec.tls,
                ) as m:
                    status = await m.watch()
                    up = True
                    self._links[name] = m
                    self.observe(name, LinkUp(name, parse_status(status)))
                    while True:
                        # Role changes are pushed; a status now and then keeps
                        # "last heard" and the serial fresh in the view.
                        with trio.move_on_at(refresh_at(self.settings.status_interval)):
                            push = await m.push()
                            self.observe(name, StatusSeen(name, parse_status(push)))
                            continue
                        self.observe(name, StatusSeen(name, parse_status(await m.status())))
            except (OSError, LinkEnded, ConfServError, trio.TooSlowError, MalformedStatus) as exc:
                if up:
                    self.observe(name, LinkLost(name, reason(exc), abrupt=abrupt(exc)))
            finally:
                self._links.pop(name, None)
            await trio.sleep(RECONNECT)

    async def command(
        self,
        name: str,
        call: Callable[[Any], Awaitable[dict[str, Any]]],
        timeout: float = 5.0,
    ) -> tuple[dict[str, Any] | None, str]:
        """``call`` on ``name``'s watch link (or a new connection when it is down): its
        answer, or None and why. A refusal as stale is told to ``superseded``."""
        link = self._links.get(name)
        if link is not None:
            try:
                with trio.fail_after(30):
                    return await call(link), ""
            except NotSentError:
                pass  # the watch link had ended: certainly not done, so on a new connection
            except StaleSupervisorError as exc:
                self.superseded(exc.newest)
                return None, reason(exc)
            except (LinkEnded, ConfServError, trio.TooSlowError) as exc:
                return None, reason(exc)
        spec = self.settings.servers[name]
        try:
            with trio.fail_after(30):
                async with open_management(
                    spec.host,
                    spec.management_port,
                    spec.management_secret,
                    expect=spec.section,
                    purpose=Purpose.MANAGEMENT,
                    timeout=timeout,
                    tls=spec.tls,
                ) as m:
                    return await call(m), ""
        except StaleSupervisorError as exc:
            self.superseded(exc.newest)
            return None, reason(exc)
        except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
            return None, reason(exc)

    # Each role command reads the supervisor epoch as it is sent (epoch_now raises
    # NotActingError when this supervisor may not act: nothing is sent, no answer fed).


#: A server that pushed nothing is asked for its status every this many status intervals.
REFRESH_INTERVALS = 5


def refresh_at(status_interval: float) -> float:
    """When the watch links next ask their servers for a status: the next point, after
    now, of one grid of ``REFRESH_INTERVALS * status_interval`` seconds shared by every
    link of the process, so that the questions go out together and the answers wake
    the decision loop a few times per round instead of once per server (a server is
    asked at most that long after its last push or status, as before)."""
    period = REFRESH_INTERVALS * status_interval
    return (math.floor(trio.current_time() / period) + 1) * period


def parsed(answer: tuple[dict[str, Any] | None, str]) -> tuple[ServerStatus | None, str]:
    """A command's status answer parsed at the edge (a malformed one: None and why)."""
    fields, reason = answer
    if fields is None:
        return None, reason
    try:
        return parse_status(fields), ""
    except MalformedStatus as exc:
        return None, f"malformed answer: {exc}"


def abrupt(exc: BaseException) -> bool:
    """Whether the link was closed or reset by the server's end (not a silence): the
    exception, or what it was raised from, is a close, a reset or a broken pipe."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (LinkClosedByPeer, LinkBroken, ConnectionError)):
            return True
        if isinstance(seen, AddpTimeout):
            return False
        seen = seen.__cause__ or seen.__context__
    return False


def reason(exc: BaseException) -> str:
    if isinstance(exc, RequestError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    if isinstance(exc, MalformedStatus):
        return f"malformed status: {exc}"
    return str(exc) or type(exc).__name__
