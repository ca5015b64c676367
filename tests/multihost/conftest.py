"""Fixtures for the network-namespace test bed.

``bed`` is a fresh five-host :class:`~tests.multihost.netns.TestBed` per test (it
builds in about 0.1 s). Where namespaces cannot be made (not root, no ``ip``, no
permission, no iptables) the test is skipped, except under CI (``$CI`` set, as in
``tests/conftest.py`` and ``tests/pg_cluster.py``) where it fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import pytest

from tests.multihost.netns import DEFAULT_HOSTS, NetnsUnavailable, TestBed


@contextlib.contextmanager
def bed_or_skip(
    hosts: Sequence[str] = DEFAULT_HOSTS, *, iptables: bool = True
) -> Iterator[TestBed]:
    """A built :class:`TestBed`; skip the test if namespaces cannot be made, fail under CI."""
    bed = TestBed(hosts, iptables=iptables)
    try:
        bed.__enter__()
    except NetnsUnavailable as exc:
        reason = f"multi-host test bed unavailable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        yield bed
    except BaseException as exc:
        bed.__exit__(type(exc), exc, exc.__traceback__)
        raise
    bed.close()


@pytest.fixture
def bed() -> Iterator[TestBed]:
    """A fresh bed with hosts A to E, torn down after the test."""
    with bed_or_skip() as built:
        yield built
