"""TimeLimit on real threads: the timeout's exception lands in the guarded function or nowhere.

The worker's own timeout tests (tests/client/test_timeouts.py) run a real worker against a
server; these hammer the race between a function returning and its limit expiring, which
the worker can hit only a few times a second.
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from werk.client import JobTimeoutError, timelimit
from werk.client.timelimit import INTERRUPTS, TimeLimit

pytestmark = pytest.mark.skipif(not INTERRUPTS, reason="needs CPython's C API")


def spin(seconds: float) -> str:
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        pass
    return "returned"


@pytest.fixture
def fast_switches() -> Iterator[None]:
    """Threads take turns every 20 us instead of 5 ms, so that an expiry can fall anywhere
    in a function's last instants rather than only where a turn ends."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("fast_switches")
def test_expiring_as_the_function_returns_never_hits_the_thread_afterwards() -> None:
    # Given a thread that runs guarded calls of busy functions lasting 0..1 ms, then a
    # stretch of its own Python code (where a stray exception would land),
    limits: queue.SimpleQueue[TimeLimit | None] = queue.SimpleQueue()
    ran: queue.SimpleQueue[TimeLimit] = queue.SimpleQueue()
    outcomes: list[tuple[str, bool]] = []
    stray: list[BaseException] = []
    rng, thread_rng = random.Random(7), random.Random(8)

    def work() -> None:
        try:
            while (limit := limits.get()) is not None:
                try:
                    outcome = limit.call(spin, (thread_rng.random() / 1000,))
                except JobTimeoutError:
                    outcome = "interrupted"
                outcomes.append((outcome, limit.expired))
                for _ in range(2000):  # the worker's own code after the job
                    pass
                ran.put(limit)
        except BaseException as exc:
            stray.append(exc)
            ran.put(TimeLimit(1))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    # When each call's limit expires at a random moment around its end (0..1 ms),
    for _ in range(2000):
        limit = TimeLimit(1)
        limits.put(limit)
        time.sleep(rng.random() / 1000)  # lets the thread run (a busy wait would hold the GIL)
        limit.expire()
        ran.get(timeout=10)
        if stray:
            break
    limits.put(None)
    thread.join(10)
    # Then no exception ever reached the thread outside a guarded call,
    assert stray == []
    # every interrupted call counts as expired, and both outcomes happened.
    assert all(expired for outcome, expired in outcomes if outcome == "interrupted")
    kinds = {outcome for outcome, _ in outcomes}
    assert kinds == {"returned", "interrupted"}


def test_a_limit_that_expired_before_the_call_keeps_the_function_from_running() -> None:
    called: list[int] = []
    limit = TimeLimit(0.5)
    limit.expire()
    with pytest.raises(JobTimeoutError, match=r"timeout of 0\.5s passed before it started"):
        limit.call(called.append, (1,))
    assert called == [] and limit.expired


def test_expiring_after_the_function_returned_changes_nothing() -> None:
    limit = TimeLimit(0.5)
    assert limit.call(spin, (0,)) == "returned"
    limit.expire()
    assert not limit.expired
    for _ in range(100_000):  # nothing pending lands here
        pass


def test_an_exception_sent_as_the_function_returns_is_cleared_before_the_thread_goes_on() -> None:
    # Given a function that has returned, its thread waiting for the limit's lock to leave
    # the guarded call (the lock held here, as expire() holds it),
    limit = TimeLimit(0.5)
    returning, locked = threading.Event(), threading.Event()
    after: list[str] = []

    def job() -> str:
        returning.set()
        locked.wait(5)
        return "value"

    def work() -> None:
        try:
            value = limit.call(job, ())
            for _ in range(100_000):  # the worker's own code after the job
                pass
            after.append(value)
        except BaseException as exc:
            after.append(repr(exc))

    thread = threading.Thread(target=work)
    thread.start()
    assert returning.wait(5)
    with limit._lock:
        locked.set()
        time.sleep(0.05)  # the function returned; its thread waits for the lock in _disarm
        # When the exception is sent then, as expire() sends it (state running -> sent),
        assert timelimit._SET_ASYNC_EXC is not None
        timelimit._SET_ASYNC_EXC(thread.ident or 0, JobTimeoutError)
        limit._state = timelimit._SENT
    thread.join(5)
    # Then it is cleared before it lands: the thread's own code runs on undisturbed, and the
    # job counts as expired all the same.
    assert after == ["value"]
    assert limit.expired
