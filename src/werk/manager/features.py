"""The middleware every server runs, in order: the features built on the core.

Each feature (unique jobs, expiring jobs, chains, batches, tracking, throttles, job metrics)
adds its middleware here, one line each.
"""

from __future__ import annotations

from typing import Any

from werk.manager.batches import Batches
from werk.manager.chains import Chains
from werk.manager.expiry import ExpiringJobs
from werk.manager.jobmetrics import JobMetrics
from werk.manager.middleware import Middleware
from werk.manager.results import DEFAULT_MAX_BYTES, Results
from werk.manager.throttles import ThrottleMiddleware
from werk.manager.tracking import Tracking
from werk.manager.unique import UniqueJobs
from werk.storage.base import Store


def default_middleware(store: Store, settings: dict[str, Any]) -> list[Middleware]:
    """Return the middleware chain for a server.

    Args:
        store: the server's store.
        settings: the server's parsed configuration files (``conf.d/*.toml``), for
            features configured there (throttles, say).
    """
    chain: list[Middleware] = []
    batches, tracking = Batches(store), Tracking(store)
    results = Results(store, max_result_bytes(settings))
    # First: an expired job is dropped before the rest (which hear of it: their ended hook).
    chain.append(ExpiringJobs(store))
    chain.append(Chains(results))  # before any that keeps state: a refused chain leaves none
    chain.append(ThrottleMiddleware(store, settings))  # next: a handed-back job saw no other
    chain.append(UniqueJobs(store))  # before Batches: a refused push is never counted
    chain.append(batches)
    chain.append(tracking)
    chain.append(results)  # its pending record is written only for accepted pushes
    chain.append(JobMetrics(store))  # last: counts what the others let through
    return chain


def max_result_bytes(settings: dict[str, Any]) -> int:
    """Return ``[results] max_bytes`` from the configuration files (default 1 MiB).

    Raises:
        ValueError: the setting is not a positive integer.
    """
    section = settings.get("results")
    value = section.get("max_bytes", DEFAULT_MAX_BYTES) if isinstance(section, dict) else None
    if value is None:
        return DEFAULT_MAX_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"[results] max_bytes must be a positive integer, not {value!r}")
    return value
