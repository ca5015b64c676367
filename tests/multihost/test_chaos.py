"""A bounded slice of the multi-host chaos engine in ``make test``: one seeded schedule
(``make chaos`` runs 50). See :mod:`tests.multihost.chaos`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.multihost.chaos import one_schedule, schedule
from tests.multihost.conftest import bed_or_skip
from tests.multihost.system import HOSTS

pytestmark = pytest.mark.integration

#: A schedule of 8 s with a host crash, a kill, a link down, a partition, a pause and
#: (seed % 3 == 0) a PostgreSQL failover: see ``schedule(SEED, HORIZON)``.
SEED, HORIZON = 3, 8.0


def test_the_schedule_is_a_real_mix_of_faults() -> None:
    faults = schedule(SEED, HORIZON).faults
    assert {"crash", "kill", "pause", "partition", "link_down"} <= {f.kind for f in faults}
    assert not any(f.kind == "crash" and f.hosts & {"D", "E"} for f in faults)


@pytest.mark.chaos_slice  # 28 s: run by make chaos and CI (.ci/run), not make test
def test_one_seeded_schedule_on_the_bed_is_clean(tmp_path: Path) -> None:
    with bed_or_skip(HOSTS) as bed:
        outcome = one_schedule(bed, tmp_path, SEED, HORIZON)
    assert outcome.acked > 0
    assert len(outcome.faults) == len(schedule(SEED, HORIZON).faults) + (SEED % 3 == 0)
    assert outcome.violations == [], "\n".join(outcome.violations)
