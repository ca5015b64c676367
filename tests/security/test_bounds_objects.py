"""An object has a size limit; a change too large for a peer is refused before commit, and a
read answer is cut in chunks bounded in bytes (issue 12).

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
from hypothesis import given
from hypothesis import strategies as st

from addp import decode_payload, encode_payload
from confserv.config.bounds import DEFAULT_MAX_OBJECT_SIZE, object_size_limit
from confserv.config.settings import DatabaseSettings, ServerSettings
from confserv.core.object_size import ObjectTooLargeError, check_write_size
from confserv.server.read_chunks import ReadChunker
from confserv.store.base import Write
from confserv.wire.errors import BadRequestError, HistoryExpiredError
from tests.confserv.test_pair import Server, client, start_pair, wait_for

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
    return await start_pair(db, nursery)


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


@given(
    st.lists(st.integers(min_value=0, max_value=5000), max_size=60),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=1, max_value=9000),
)
def test_read_chunks_carry_every_object_once_in_bounded_messages(
    sizes: list[int], max_count: int, max_bytes: int
) -> None:
    chunker = ReadChunker(7, max_count=max_count, max_bytes=max_bytes)
    got: list[object] = []
    objects = [{"dbid": i, "name": "x" * size} for i, size in enumerate(sizes)]
    for obj in objects:
        chunk = chunker.add(obj)
        if chunk is not None:
            message = decode_payload(chunk)
            assert message["re"] == 7
            assert 1 <= len(message["objects"]) <= max_count
            # over max_bytes only by the object that filled it
            largest = max(len(encode_payload(o)) for o in message["objects"])
            assert len(chunk) <= max_bytes + largest + 64
            got.extend(message["objects"])
    got.extend(chunker.rest())
    assert got == objects
    assert chunker.sent + len(chunker.rest()) == len(objects)


@pytest.mark.integration
async def test_a_read_of_large_objects_is_cut_into_chunks_under_the_frame_limit(
    pair: tuple[Server, Server],
) -> None:
    primary, _ = pair
    async with client(primary) as c:
        for i in range(6):  # each just under max-object-size: 5.4 MB in all
            await c.create("Host", {"name": f"big{i}", "options": {"s": {"k": "b" * (MiB - 900)}}})
        hosts = await c.read("Host")
        big = sorted(h["name"] for h in hosts if h["name"].startswith("big"))
        assert big == [f"big{i}" for i in range(6)]
        assert all(len(h["options"]["s"]["k"]) == MiB - 900 for h in hosts if h["name"] in big)
        assert (await c.status())["role"] == "primary"


@pytest.mark.integration
async def test_a_restore_too_large_for_one_answer_says_reload(
    pair: tuple[Server, Server],
) -> None:
    primary, _ = pair
    async with client(primary) as c:
        serial = (await c.status())["serial"]
        for i in range(5):  # 5 changes of almost 1 MiB: over one 4 MiB answer
            await c.create("Host", {"name": f"r{i}", "options": {"s": {"k": "r" * (MiB - 900)}}})
        with pytest.raises(HistoryExpiredError, match="reload"):
            await c.restore(serial)
        assert len((await c.restore(serial + 3))["changes"]) == 2  # a smaller one still goes
        assert (await c.status())["role"] == "primary"


@pytest.mark.integration
async def test_a_snapshot_of_large_objects_is_cut_into_chunks_under_the_frame_limit(
    pair: tuple[Server, Server],
) -> None:
    """A proxy loads the primary's memory with ``snapshot``: its chunks were cut by count
    only (500 objects), so six objects of ~1 MiB made one 5.4 MB message, over the
    proxy's 4 MiB frame limit, and the proxy could never load."""
    primary, _ = pair
    async with client(primary) as c:
        for i in range(6):
            await c.create("Host", {"name": f"snap{i}", "options": {"s": {"k": "s" * (MiB - 900)}}})
    async with primary.manage() as m:
        snap = await m.session.request("snapshot")
    names = sorted(o["name"] for o in snap["objects"] if o["type"] == "Host")
    assert [n for n in names if n.startswith("snap")] == [f"snap{i}" for i in range(6)]
    assert snap["serial"] == primary.rt.service.last_serial
