"""Worker recycling: a worker that stops after so many jobs, or once its resident memory
grew past a limit, so that a fresh process takes its place (Celery's
``worker_max_tasks_per_child`` and ``worker_max_memory_per_child``, RQ's ``--max-jobs``).

The worker then stops fetching and stops gracefully, as on SIGTERM: running jobs finish
and are ACKed, none is lost or run twice. ``werk worker`` exits with
:data:`RECYCLE_STATUS`, and under ``werk worker -p N`` the supervisor starts a new worker
in its place at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

RECYCLE_STATUS = 75
"""``werk worker``'s exit status after reaching ``--max-jobs`` or ``--max-memory``: "replace
me". 75 is ``EX_TEMPFAIL`` of sysexits.h (a temporary failure: run it again), apart from
0 (stopped), 1 and 2 (errors another try would meet again) and a shell's 126 and above."""


def resident_kib() -> int | None:
    """This process's resident memory in KiB: the current figure from ``/proc/self/statm``
    (Linux), else the peak one from ``getrusage`` (what Celery's
    ``worker_max_memory_per_child`` reads), else ``None`` (Windows)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


class Recycling:
    """A worker's recycling limits, and its jobs counted against them.

    Jobs are counted as Celery counts tasks per child: each job that ran, whatever its
    outcome (done, failed, timed out). ``max_jobs`` also bounds the FETCHes: a processor
    fetches only while the jobs that ran plus the FETCHes in flight stay within it, so at
    most ``max_jobs`` jobs run in one process whatever the concurrency.

    Args:
        max_jobs: jobs a worker runs before it is recycled; ``None``: no limit.
        max_memory: MiB of resident memory (checked after each job) past which the worker
            is recycled; ``None``: no limit.
        on_limit: called with the reason (``"processed 1000 jobs (--max-jobs 1000)"``)
            once a limit is reached, after the job that reached it.

    Raises:
        ValueError: a limit below 1.
    """

    def __init__(
        self,
        max_jobs: int | None = None,
        max_memory: int | None = None,
        on_limit: Callable[[str], None] = lambda reason: None,
    ) -> None:
        for name, value in (("max_jobs", max_jobs), ("max_memory", max_memory)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.on_limit = on_limit
        self.ran = 0
        """Jobs that ran."""
        self.claimed = 0
        """FETCHes in flight, or jobs fetched and still running."""

    def claim(self) -> bool:
        """Whether a processor may send one more FETCH (and count it as in flight)."""
        if self.max_jobs is not None and self.ran + self.claimed >= self.max_jobs:
            return False
        self.claimed += 1
        return True

    def unclaim(self) -> None:
        """A claimed FETCH brought no job to run (none waiting, an error, a lost connection,
        a job handed back at shutdown)."""
        self.claimed -= 1

    def job_ran(self) -> None:
        """Count a job that ran (its claim ends); call ``on_limit`` if a limit is reached."""
        self.claimed -= 1
        self.ran += 1
        reason = self._reached()
        if reason is not None:
            self.on_limit(reason)

    def _reached(self) -> str | None:
        if self.max_jobs is not None and self.ran >= self.max_jobs:
            return f"processed {self.ran} jobs (--max-jobs {self.max_jobs})"
        if self.max_memory is None:
            return None
        kib = resident_kib()
        if kib is not None and kib > self.max_memory * 1024:
            return f"resident memory is {kib / 1024:.1f} MiB (--max-memory {self.max_memory})"
        return None
