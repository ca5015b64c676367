"""An object has a size limit; a change too large for a peer is refused before commit (issue 12).

The audit: one write that encoded to just over 4 MiB (the frame limit) was
committed, then could not be replicated: the backup reconnected 364 times in
20 s and stayed behind for good. Now a write whose object or change encodes
over ``max-object-size`` (1 MiB by default, below ``max-frame-size``) is
refused with one clear error before commit, and the backup keeps following.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from confserv.admin.bootstrap import init_database
from confserv.config.bounds import DEFAULT_MAX_OBJECT_SIZE, object_size_limit
from confserv.config.settings import DatabaseSettings, ServerSettings
from confserv.core.object_size import ObjectTooLargeError, check_write_size
from confserv.store.base import Write
from confserv.wire.errors import BadRequestError
from tests.confserv.conftest import ADMIN_PASSWORD
from tests.confserv.test_pair import Server, client, wait_for

MiB = 1 << 20


def test_a_write_over_the_limit_is_refused_with_both_sizes() -> None:
    write = Write("add", "Host", None, {"name": "h", "options": {"s": {"k": "x" * 2000}}})
    assert check_write_size(write, 4096) is write
    with pytest.raises(ObjectTooLargeError, match=r"Host 'h': the object encodes to \d+ bytes"):
        check_write_size(write, 1000)
    change = Write("change", "Host", 3, None, {"delta": {}, "options": {"s": {"k": "y" * 5000}}})
    with pytest.raises(ObjectTooLargeError, match="the change encodes to"):
        check_write_size(change, 1000)


def test_the_default_limit_leaves_room_in_every_frame_limit() -> None:
    assert MiB == DEFAULT_MAX_OBJECT_SIZE
    for frame in (1024, 65_536, MiB, 4 * MiB, 16 * MiB):
        assert object_size_limit(frame) < frame
    settings = ServerSettings(
        file=Path("x.conf"), section="s", port=1, db=None, lease_renew=1.0, max_frame_size=MiB
    )
    assert settings.max_object_size == object_size_limit(MiB)  # the default follows


@pytest.fixture
async def pair(tmp_path: Path, nursery: trio.Nursery) -> tuple[Server, Server]:
    db = DatabaseSettings(section="db", engine="sqlite", dbname=str(tmp_path / "cfg.sqlite"))
    primary, backup = Server(db, "confserv"), Server(db, "backup")
    await init_database(primary.settings, backup.settings, ADMIN_PASSWORD)
    await primary.start(nursery)
    await wait_for(lambda: primary.rt.role == "primary")
    await backup.start(nursery)
    await wait_for(lambda: backup.rt.role == "backup")
    return primary, backup


@pytest.mark.integration
async def test_a_write_just_over_the_frame_limit_is_refused_and_the_backup_keeps_following(
    pair: tuple[Server, Server],
) -> None:
    primary, backup = pair
    async with client(primary) as c:
        made = await c.create("Host", {"name": "small"})
        serial = primary.rt.service.last_serial
        # Encodes to just over 4 MiB (the frame limit): it could reach no peer.
        huge = {"name": "huge", "options": {"s": {"k": "x" * (4 * MiB - 200)}}}
        with pytest.raises(BadRequestError, match="max-object-size"):
            await c.create("Host", huge)
        with pytest.raises(BadRequestError, match="max-object-size"):
            await c.update("Host", made["dbid"], None, {"s": {"k": "y" * (MiB + 10)}})
        assert primary.rt.service.last_serial == serial  # nothing was committed
        assert primary.rt.service.find("Host", "huge") is None
        # Just under the limit is fine, and the backup follows it and what comes after.
        under = {"name": "under", "options": {"s": {"k": "z" * (MiB - 500)}}}
        await c.create("Host", under)
        await c.create("Host", {"name": "after"})
    await wait_for(lambda: backup.rt.service.last_serial == primary.rt.service.last_serial)
    assert backup.rt.service.find("Host", "after") is not None
    assert backup.rt.service.find("Host", "under") is not None
