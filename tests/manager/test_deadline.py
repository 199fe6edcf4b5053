"""Deadlines of the server's bounded waits are never reached early on uvloop's
millisecond clock (a RESULT wait of 0.5 s once answered after 0.499 s)."""

from __future__ import annotations

import asyncio
import time

import uvloop

from werk.manager.deadline import Deadline

SECONDS = 0.0123  # not a whole number of milliseconds


def test_a_timer_armed_for_a_deadline_never_fires_before_it() -> None:
    async def earliest() -> float:
        loop = asyncio.get_running_loop()
        worst = float("inf")
        for _ in range(60):
            started = time.monotonic()
            deadline = Deadline(SECONDS)
            try:
                async with asyncio.timeout(deadline.timer()):
                    await loop.create_future()
            except TimeoutError:
                pass
            assert deadline.remaining() <= 0
            worst = min(worst, time.monotonic() - started)
        return worst

    assert uvloop.run(earliest()) >= SECONDS


def test_a_capped_timer_wakes_after_the_cap_and_the_rest_remains() -> None:
    deadline = Deadline(10)
    assert 0.25 < deadline.timer(0.25) < 0.26
    assert 9.9 < deadline.remaining() <= 10
    assert Deadline(-5).remaining() <= 0
