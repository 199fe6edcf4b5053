"""Soak, CI size: 20,000 jobs with 10% failures; memory flat, every job counted.

The full run is ``python -m tests.reliability.soak --jobs 1000000``; see
:mod:`tests.reliability.soak`.
"""

from __future__ import annotations

from tests.helpers import ServerProcess
from tests.reliability.soak import FAIL_EVERY, run

JOBS = 20_000
GROWTH = 25.0


def test_soak_counts_every_job_with_flat_memory(werk_server: ServerProcess) -> None:
    result = run(werk_server, JOBS)
    print(result.line())
    assert result.processed == JOBS, result.line()
    assert result.failures == result.failed_sent == JOBS // FAIL_EVERY, result.line()
    assert not result.leftover, result.line()
    assert result.growth <= GROWTH, result.line()
