"""The jobs the benchmark workers run: a no-op, and one that records its start delay.

``record`` appends ``start - args[0]`` (seconds) to the file named by ``WERK_BENCH_OUT``,
one line per job; the file is flushed as it goes so the harness can read it any time.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from werk.client import Worker

worker = Worker(queues=["bench"], concurrency=10)


def noop() -> None:
    """Do nothing: the benchmarks measure the job system, not the job."""


async def anoop() -> None:
    """Do nothing, as a coroutine."""


_OUT = os.environ.get("WERK_BENCH_OUT")
_files: list[TextIO] = []


async def record(due: float) -> None:
    """Write how late this job started, in seconds after ``due``."""
    late = time.time() - due
    if _OUT:
        if not _files:  # opened once: the measurement should not cost an open per job
            _files.append(open(_OUT, "a", buffering=1))
        _files[0].write(f"{late:.6f}\n")


worker.add("noop", noop)
worker.add("anoop", anoop)
worker.add("record", record)
