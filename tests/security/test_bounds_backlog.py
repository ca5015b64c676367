"""Each subscriber's backlog is bounded in bytes, not only in changes (issue 12).

Before, a subscriber could be left 10,000 changes behind whatever their
size: with changes near the frame limit, gigabytes held for one client.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from confserv.core.backlog import Backlog
from confserv.core.fanout import SUBSCRIBER_BYTES, Outgoing, Subscription
from confserv.store.base import Change

MiB = 1 << 20


@given(st.lists(st.integers(min_value=0, max_value=3 * MiB), max_size=100))
def test_bytes_waiting_never_exceed_the_limit_but_one_change_always_fits(
    sizes: list[int],
) -> None:
    backlog = Backlog(1000, max_bytes=4 * MiB)
    for size in sizes:
        before = backlog.bytes_behind
        accepted = backlog.queued(size)
        if accepted:
            assert backlog.bytes_behind == before + size
            assert backlog.bytes_behind <= 4 * MiB or backlog.behind == 1
        else:
            assert backlog.cut_off
            assert before > 0
            break


def change(serial: int) -> Change:
    return Change(serial, 1, "add", "Host", serial, {"name": f"h{serial}"}, 0.0)


def encoded_as(data: bytes, serial: int) -> Outgoing:
    """Change ``serial`` on its way out, its notification encoded to ``data``."""
    return Outgoing(change(serial), data, b"")


def test_a_reader_that_takes_nothing_is_cut_off_by_bytes() -> None:
    sub = Subscription(everything=True)
    big = b"x" * MiB  # each change encodes to 1 MiB
    offered = 0
    while sub.offer(encoded_as(big, offered + 1)):
        offered += 1
        assert offered < 1000
    assert sub.overflowed
    assert offered == SUBSCRIBER_BYTES // MiB


def test_a_reader_that_keeps_up_is_never_cut_off() -> None:
    sub = Subscription(everything=True)
    big = b"x" * MiB
    for serial in range(1, 200):
        assert sub.offer(encoded_as(big, serial))
        assert sub.receive.receive_nowait().serial == serial
    assert not sub.overflowed
