"""Fixtures of the feature tests: real stores (SQLite, Redis) and a controlled clock.

``feature_backend`` reuses the storage suite's :class:`~tests.storage.conftest.Backend`
(a fresh SQLite directory, or a fresh Redis key prefix deleted afterwards); it is named
apart from the root ``backend`` fixture, which the ``werk_server`` fixtures use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.storage.conftest import BACKENDS, Backend, backend_data
from werk.storage.base import Store


class Clock:
    """A clock the test moves by hand; call it for the time (Unix seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=BACKENDS)
async def feature_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """One backend's data for in-process tests, cleaned up after the test."""
    async with backend_data(request.param, tmp_path) as data:
        yield data


@pytest.fixture
async def store(feature_backend: Backend) -> Store:
    """An open store on a fresh backend."""
    return await feature_backend.open()
