"""The backup's replication stream at run time: trio glue around the pure follower.

:class:`~confserv.ha.follower.Follower` decides; this module carries it out.

:func:`follow_primary` reads the lease, connects to the holder's management
port, asks to ``replicate`` from the last serial it has, applies every change
the primary streams and acknowledges it on the follower's schedule. A gap is
closed from the History Log in the database, a change memory cannot take
reloads memory, an older epoch is refused. Every decision (whom to follow,
when to try again, when to acknowledge, how long an answer may take) is the
follower's; this code feeds it the time and carries out what it says.
"""

from __future__ import annotations

import trio

from addp import LinkEnded
from confserv.client.session import ManagementClient, open_management
from confserv.config.settings import ServerSettings
from confserv.core.runtime import Runtime
from confserv.logs import events
from confserv.store.base import Change, ConfigStore, Lease
from confserv.wire.auth import Purpose
from confserv.wire.errors import (
    ApplyError,
    ChangeGapError,
    ConfServError,
    StaleEpochError,
    UnavailableError,
)

from .follower import Follower, Target
from .peer_options import check_options

#: Seconds between a backup's attempts to reach the primary.
FOLLOW_RETRY = 0.05


def new_follower(settings: ServerSettings, holder_key: str) -> Follower:
    """The follower of a backup with these settings: it acknowledges every
    ``lease-renew`` seconds and waits twice that for an answer."""
    return Follower(
        holder_key,
        retry=FOLLOW_RETRY,
        ack_every=settings.lease_renew,
        ack_timeout=settings.lease_renew * 2,
    )


async def follow_primary(
    rt: Runtime, store: ConfigStore, settings: ServerSettings, holder_key: str
) -> None:
    """As backup: replicate from whoever holds the lease, forever (cancelled on promotion)."""
    follower = new_follower(settings, holder_key)
    secret = settings.management_secret or ""
    while True:
        deadline = follower.next_deadline()
        if deadline is not None:
            await trio.sleep_until(deadline)
        lease = await _read_lease(rt, store)
        target = follower.lease_read(
            "" if lease is None else lease.holder_key,
            "" if lease is None else lease.holder,
            "" if lease is None else lease.address,
            lease is not None and lease.valid,
            trio.current_time(),
        )
        if target is None:
            continue
        rt.primary_hint = target.client_address
        where = target.management_address
        try:
            # expect: a server on that port that proves another name is not followed
            async with open_management(
                target.host,
                target.management_port,
                secret,
                expect=target.holder,
                purpose=Purpose.MANAGEMENT,
                addp=settings.addp,
                timeout=5,
                tls=settings.tls.client,  # encryption = true: the primary's certificate verified
            ) as m:
                follower.connected()
                rt.log.emit(events.CONNECTED, what=f"primary '{target.holder}'", where=where)
                await _stream(rt, store, follower, target, m)
        except StaleEpochError as exc:
            rt.log.emit(events.STALE_EPOCH, reason=exc)
        except (OSError, LinkEnded, ConfServError, trio.TooSlowError) as exc:
            rt.log.emit(
                events.CONNECTION_LOST, what=f"primary '{target.holder}'", where=where, reason=exc
            )
        follower.lost(trio.current_time())


async def _stream(
    rt: Runtime, store: ConfigStore, follower: Follower, target: Target, m: ManagementClient
) -> None:
    """Replicate over one connection until it fails (the follower says when to ack)."""
    svc = rt.service
    extra = {} if rt.options is None else {"options": rt.options}
    answer = await m.session.request("replicate", serial=svc.last_serial, **extra)
    if "options" in answer:
        check_options(rt, f"the primary '{target.holder}'", answer["options"])
    await _apply_all(rt, store, [Change.from_wire(c) for c in answer["changes"]])
    if answer.get("expired"):
        await svc.catch_up()
    follower.replicated(int(answer["serial"]), svc.last_serial, trio.current_time())
    # following: what /backup and the replication-lag metric read
    rt.following, rt.replicated_at = target.holder, trio.current_time()
    rt.heard_from, rt.heard_at = target.holder, rt.replicated_at
    rt.primary_lost = False
    try:
        while True:
            if follower.ack_due(trio.current_time()):  # acks go out on a busy stream too
                with trio.fail_at(follower.ack_sent(trio.current_time())):
                    await m.session.request("ack", serial=svc.last_serial)
                follower.ack_answered(trio.current_time())
                rt.replicated_at = rt.heard_at = trio.current_time()
            deadline = follower.next_deadline()
            assert deadline is not None  # streaming: the next ack is always scheduled
            with trio.move_on_at(deadline):
                push = await m.session.next_notification()
                if "notify" in push:
                    await _apply_all(rt, store, [Change.from_wire(push["notify"])])
                    follower.applied(svc.last_serial)
                    rt.replicated_at = rt.heard_at = trio.current_time()
    finally:
        rt.following = rt.replicated_at = None
        # Clients refused meanwhile are told: ask again, soon. Not when the stream
        # ended because this server was promoted meanwhile.
        rt.primary_lost = rt.role == "backup"


async def _read_lease(rt: Runtime, store: ConfigStore) -> Lease | None:
    try:
        return await store.read_lease()
    except UnavailableError as exc:
        rt.log.emit(events.DB_ERROR, reason=f"reading the lease failed: {exc}")
        return None


async def _apply_all(rt: Runtime, store: ConfigStore, changes: list[Change]) -> None:
    svc = rt.service
    for change in changes:
        try:
            try:
                svc.apply(change)
            except ChangeGapError:
                await svc.catch_up()  # closes the gap from the History Log in the database
                svc.apply(change)
        except ApplyError as exc:
            await svc.reload_after(exc)  # memory was not the database's: reload, go on
