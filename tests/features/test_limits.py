"""The LIMIT verb against a real server, on SQLite and Redis: many peers at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import Peer, ServerProcess, error_text
from werk.protocol.resp import Simple

OK = Simple("OK")


def acquire(peer: Peer, **fields: Any) -> Any:
    return peer.call("LIMIT ACQUIRE " + json.dumps(fields))


def run_peers(server: ServerProcess, count: int, work: Callable[[Peer, int], None]) -> None:
    """Run ``work(peer, index)`` in ``count`` threads, each with its own connection."""
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            peer = Peer(server.host, server.port)
            assert peer.hello() == OK
            work(peer, index)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


Stamp = tuple[float, float]
"""When an ACQUIRE was sent and when its +OK arrived: the server's grant lies between."""


def hammer(server: ServerProcess, peers: int, seconds: float, **limiter: Any) -> list[Stamp]:
    """Acquire as fast as possible from many peers; return the granted stamps."""
    granted: list[Stamp] = []
    lock = threading.Lock()
    stop = time.time() + seconds

    def work(peer: Peer, index: int) -> None:
        while time.time() < stop:
            sent = time.time()
            reply = acquire(peer, holder=f"p{index}", **limiter)
            if reply == OK:
                with lock:
                    granted.append((sent, time.time()))
            else:
                assert error_text(reply).startswith("LIMITED retry after "), reply
                time.sleep(0.005)

    run_peers(server, peers, work)
    return sorted(granted)


def most_in_any_window(granted: list[Stamp], period: float) -> int:
    """The most grants certainly inside one window shorter than ``period`` (no false
    positives: a grant counts only when its whole send..receive span is inside)."""
    best = 0
    for start, _ in granted:
        inside = [g for g in granted if g[0] >= start and g[1] < start + period]
        best = max(best, len(inside))
    return best


def test_concurrent_never_more_than_n_holders(werk_server: ServerProcess) -> None:
    # Given 10 peers sharing a concurrent limiter of 3
    holding = 0
    peak = 0
    done = 0
    lock = threading.Lock()

    def work(peer: Peer, index: int) -> None:
        nonlocal holding, peak, done
        for round_ in range(5):
            holder = f"w{index}-{round_}"
            spec = {"name": "pdf", "kind": "concurrent", "limit": 3, "period": 30}
            reply = acquire(peer, holder=holder, wait=10, **spec)
            assert reply == OK, reply
            with lock:
                holding += 1
                peak = max(peak, holding)
            time.sleep(0.02)
            with lock:
                holding -= 1
                done += 1
            assert peer.call(f'LIMIT RELEASE {{"name":"pdf","holder":"{holder}"}}') == OK

    # When each takes and releases a unit five times
    run_peers(werk_server, 10, work)
    # Then never more than 3 held at once, and every round got its turn
    assert done == 50
    assert peak == 3


def test_concurrent_status_release_and_reacquire(peer: Peer) -> None:
    spec = {"name": "db", "kind": "concurrent", "limit": 2, "period": 30}
    assert acquire(peer, holder="a", **spec) == OK
    assert acquire(peer, holder="a", **spec) == OK  # the same holder takes no second unit
    assert acquire(peer, holder="b", **spec) == OK
    refused = error_text(acquire(peer, holder="c", **spec))
    assert refused.startswith("LIMITED retry after ")
    assert 29 <= float(refused.rsplit(" ", 1)[1]) <= 30  # the earliest hold expiry
    assert peer.call("LIMIT STATUS db") == b'{"name":"db","held":2}'
    assert peer.call('LIMIT RELEASE {"name":"db","holder":"a"}') == OK
    assert peer.call('LIMIT RELEASE {"name":"db","holder":"a"}') == OK  # twice is fine
    assert acquire(peer, holder="c", **spec) == OK


def test_concurrent_wait_is_served_by_a_release(peer_factory: Callable[[], Peer]) -> None:
    first, second = peer_factory(), peer_factory()
    assert first.hello() == OK and second.hello() == OK
    spec = {"name": "one", "kind": "concurrent", "limit": 1, "period": 30}
    assert acquire(first, holder="a", **spec) == OK
    started = time.monotonic()
    second.send("LIMIT ACQUIRE " + json.dumps({**spec, "holder": "b", "wait": 5}) + "\r\n")
    time.sleep(0.3)
    assert first.call('LIMIT RELEASE {"name":"one","holder":"a"}') == OK
    assert second.reply() == OK
    assert 0.3 <= time.monotonic() - started < 4  # served by the release, not the 5 s wait


def test_concurrent_units_are_reclaimed_after_the_period(peer: Peer) -> None:
    spec = {"name": "lease", "kind": "concurrent", "limit": 1, "period": 0.5}
    assert acquire(peer, holder="crashed", **spec) == OK
    assert error_text(acquire(peer, holder="b", **spec)).startswith("LIMITED")
    time.sleep(0.6)
    assert acquire(peer, holder="b", **spec) == OK


def test_bucket_never_more_than_n_per_interval(werk_server: ServerProcess) -> None:
    # 8 peers hammer a bucket of 5 per 0.5 s for 2.2 s
    granted = hammer(werk_server, 8, 2.2, name="api", kind="bucket", limit=5, period=0.5)
    # Intervals are aligned to multiples of the period: count grants surely inside each
    first = int(granted[0][0] // 0.5)
    last = int(granted[-1][1] // 0.5)
    for interval in range(first, last + 1):
        start = interval * 0.5
        inside = [g for g in granted if g[0] >= start and g[1] < start + 0.5]
        assert len(inside) <= 5, (interval, inside)
    assert len(granted) <= 5 * (last - first + 1)
    assert len(granted) >= 5 * 3  # it did grant, interval after interval


def test_window_never_more_than_n_in_any_window(werk_server: ServerProcess) -> None:
    granted = hammer(werk_server, 8, 2.2, name="mail", kind="window", limit=4, period=0.5)
    assert most_in_any_window(granted, 0.5) <= 4
    assert len(granted) >= 4 * 3


def test_leaky_bucket_drains_at_its_rate(werk_server: ServerProcess) -> None:
    # Capacity 4, draining 4 per 0.5 s (8/s): over T seconds at most 4 + 8T grants
    started = time.time()
    granted = hammer(werk_server, 8, 2.0, name="sms", kind="leaky", limit=4, period=0.5)
    span = granted[-1][1] - started
    assert len(granted) <= 4 + 8 * span + 1
    assert len(granted) >= 8  # the burst and some drain
    assert most_in_any_window(granted, 0.1) <= 4 + 1  # a burst never exceeds the capacity


@pytest.mark.parametrize("kind", ["bucket", "window", "leaky"])
def test_wait_follows_the_hint_and_never_overruns(peer: Peer, kind: str) -> None:
    spec = {"name": f"slow-{kind}", "kind": kind, "limit": 1, "period": 1}
    if kind == "bucket":  # start early in an interval (they are aligned to whole seconds)
        time.sleep(1 - time.time() % 1 + 0.02)
    assert acquire(peer, **spec) == OK
    # A wait shorter than the hint (about 1 s) gives up at once: well before the wait is over
    started = time.monotonic()
    refused = error_text(acquire(peer, wait=0.5, **spec))
    assert time.monotonic() - started < 0.4
    assert 0 < float(refused.rsplit(" ", 1)[1]) <= 1.0
    # A long enough wait is served as soon as a unit frees up: well before the wait is over
    started = time.monotonic()
    assert acquire(peer, wait=4, **spec) == OK
    assert time.monotonic() - started < 3


def test_status_of_rate_limiters(peer: Peer) -> None:
    assert peer.call("LIMIT STATUS nothing") == b'{"name":"nothing","held":0}'
    for _ in range(3):
        assert acquire(peer, name="win", kind="window", limit=5, period=60) == OK
    assert json.loads(peer.call("LIMIT STATUS win"))["held"] == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("LIMIT", "LIMIT needs an argument"),
        ("LIMIT GRAB {}", "no such LIMIT subcommand: GRAB"),
        ("LIMIT ACQUIRE nope", "LIMIT ACQUIRE: invalid JSON"),
        ("LIMIT ACQUIRE []", "LIMIT ACQUIRE expects a JSON object"),
        ('LIMIT ACQUIRE {"kind":"bucket","limit":1,"period":1}', "a limiter needs a name"),
        ('LIMIT ACQUIRE {"name":"x","kind":"fast","limit":1}', "kind must be one of"),
        ('LIMIT ACQUIRE {"name":"x","kind":"bucket","limit":0,"period":1}', "limit must be"),
        ('LIMIT ACQUIRE {"name":"x","kind":"bucket","limit":1}', "period must be a number"),
        ('LIMIT ACQUIRE {"name":"x","kind":"window","limit":1,"period":-1}', "period must be"),
        ('LIMIT ACQUIRE {"name":"x","limit":1}', "a concurrent limiter needs a holder"),
        ('LIMIT ACQUIRE {"name":"x","limit":1,"holder":"h","wait":-1}', "wait must be a number"),
        ('LIMIT RELEASE {"name":"x"}', "LIMIT RELEASE needs a holder"),
        ("LIMIT STATUS", "a limiter needs a name"),
    ],
)
def test_bad_arguments(flushed_peer: Peer, line: str, message: str) -> None:
    text = error_text(flushed_peer.call(line))
    assert text.startswith("ERR ") and message in text, text


def test_limiter_changing_kind_starts_afresh(peer: Peer) -> None:
    assert acquire(peer, name="k", kind="bucket", limit=1, period=60) == OK
    assert error_text(acquire(peer, name="k", kind="bucket", limit=1, period=60))
    assert acquire(peer, name="k", kind="window", limit=1, period=60) == OK
