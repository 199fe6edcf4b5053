"""Crash-safety harness: real load, SIGKILL at a random moment, restart, check every jid.

Each round runs producer threads (PUSH and PUSHB, recording every jid that got ``+OK``)
and worker threads (FETCH; ACK about 90% and FAIL about 10%, recording every answered
ACK/FAIL) against a ``werk server`` subprocess, SIGKILLs the server at a random moment,
restarts it on the same data directory (or the same Redis prefix) and then accounts for
every job:

1. ``MUTATE requeue`` the retries, scheduled and dead sets, then drain the queue with FETCH
   and ACK (the count comes from INFO, so the drain never waits on an empty queue);
2. probe the working set: a FAIL for every jid of the round not seen yet answers ``+OK``
   only for a job that still holds a reservation; requeue those and drain again;
3. push a barrier job, whose ``+OK`` (a committed write) also commits the drain's ACKs.

Invariants, checked after every round:

- nothing lost: every jid that got ``+OK`` was ACKed (``+OK``) or is found by the drain;
- nothing invented: every job found was pushed by this round;
- no copies: the drain finds each jid once, and afterwards every queue and set is empty;
- at-least-once, not more: during one server lifetime a job is delivered once, unless it
  failed (retries are 15+ s away, so not within a round). A job found again after the kill
  is counted by cause: its ACK was answered before its commit (DESIGN.md allows FETCH,
  ACK and FAIL to be answered before they commit), it was in flight (fetched, not finished),
  it failed (then it waits in the retries, as it should), or its PUSH committed but the
  ``+OK`` never reached the producer.

Full run: ``python -m tests.reliability.crash_harness --rounds 200`` (``--backend redis``
or ``both``; ``--seed`` to replay). The pytest suite runs a few rounds of each backend.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ServerProcess
from tests.reliability.support import OK, Conn, compact, connect, is_error

REDIS_URL = "redis://127.0.0.1:6379/2"
PRODUCERS = 2
WORKERS = 3
FAIL_RATE = 0.10


@dataclass
class Ledger:
    """What the clients of one round were told (the sets only grow under the lock)."""

    round: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    pushed_ok: set[str] = field(default_factory=set)
    unconfirmed: set[str] = field(default_factory=set)
    acked_ok: set[str] = field(default_factory=set)
    ack_sent: set[str] = field(default_factory=set)
    failed_ok: set[str] = field(default_factory=set)
    delivered: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(f"round {self.round}: {text}")


@dataclass
class RoundResult:
    """What one round did and found."""

    round: int
    pushed_ok: int
    acked_ok: int
    failed_ok: int
    found: int
    found_in_working: int
    ack_lost: int
    in_flight: int
    failed_retried: int
    push_unconfirmed: int
    ack_unanswered: int
    violations: list[str]

    @property
    def duplicates(self) -> int:
        """Jobs delivered again after the kill although they already ran (ACKed or in flight)."""
        return self.ack_lost + self.in_flight

    def line(self) -> str:
        return (
            f"round {self.round:4d}: pushed {self.pushed_ok:5d} acked {self.acked_ok:5d} "
            f"failed {self.failed_ok:4d} found {self.found:5d} (working {self.found_in_working})"
            f" | again after kill: ack-lost {self.ack_lost} in-flight {self.in_flight}"
            f" failed {self.failed_retried} push-unconfirmed {self.push_unconfirmed}"
            f" | ACK applied, reply lost {self.ack_unanswered}"
            f" | violations {len(self.violations)}"
        )


def _producer(server: ServerProcess, ledger: Ledger, index: int, stop: threading.Event) -> None:
    rng = random.Random(f"{ledger.round}-{index}")
    try:
        conn = connect(server.host, server.port, timeout=5)
    except (OSError, ConnectionError):
        return
    n = 0
    with conn:
        while not stop.is_set():
            size = 1 if rng.random() < 0.7 else rng.randint(2, 20)
            jids = [f"r{ledger.round:04d}p{index}n{n + i:06d}" for i in range(size)]
            n += size
            jobs = [{"jid": jid, "jobtype": "Crash", "args": [jid, n]} for jid in jids]
            with ledger.lock:
                ledger.unconfirmed.update(jids)
            line = f"PUSH {json.dumps(jobs[0])}" if size == 1 else f"PUSHB {json.dumps(jobs)}"
            try:
                reply = conn.call(line)
            except OSError:
                return  # the server died: these jids stay unconfirmed
            if size == 1 and reply == OK:
                refused: dict[str, str] = {}
            elif size > 1 and isinstance(reply, bytes):
                refused = json.loads(reply)
            else:
                ledger.violation(f"unexpected reply to a push: {reply!r}")
                return
            if refused:
                ledger.violation(f"jobs refused: {refused}")
            with ledger.lock:
                ledger.pushed_ok.update(jid for jid in jids if jid not in refused)


def _worker(server: ServerProcess, ledger: Ledger, index: int, stop: threading.Event) -> None:
    rng = random.Random(f"w{ledger.round}-{index}")
    try:
        conn = connect(server.host, server.port, timeout=5)
    except (OSError, ConnectionError):
        return
    with conn:
        while not stop.is_set():
            try:
                reply = conn.call("FETCH default")
                if reply is None:
                    continue
                if not isinstance(reply, bytes):
                    ledger.violation(f"unexpected reply to FETCH: {reply!r}")
                    return
                jid = json.loads(reply)["jid"]
                with ledger.lock:
                    ledger.delivered[jid] += 1
                    again = ledger.delivered[jid] > 1
                if again:
                    ledger.violation(f"{jid} delivered twice while the server lived")
                if rng.random() < FAIL_RATE:
                    fail = {"jid": jid, "errtype": "Crash", "message": "planned failure"}
                    if conn.call(f"FAIL {json.dumps(fail)}") == OK:
                        with ledger.lock:
                            ledger.failed_ok.add(jid)
                else:
                    with ledger.lock:
                        ledger.ack_sent.add(jid)
                    if conn.call(f'ACK {{"jid":"{jid}"}}') == OK:
                        with ledger.lock:
                            ledger.acked_ok.add(jid)
            except OSError:
                return


def run_load(server: ServerProcess, ledger: Ledger, duration: float) -> None:
    """Run producers and workers for ``duration`` seconds, then SIGKILL the server."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_producer, args=(server, ledger, i, stop), daemon=True)
        for i in range(PRODUCERS)
    ] + [
        threading.Thread(target=_worker, args=(server, ledger, i, stop), daemon=True)
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(duration)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(15)
        if thread.is_alive():
            ledger.violation("a client thread hung after the kill")
    with ledger.lock:
        ledger.unconfirmed -= ledger.pushed_ok


def drain(conn: Conn, queue: str = "default") -> list[str]:
    """FETCH and ACK every job in ``queue`` (sized through INFO); return their jids."""
    jids: list[str] = []
    for _ in range(10_000):
        size = conn.info()["faktory"]["queues"].get(queue, 0)
        if not size:
            return jids
        replies = conn.pipeline([f"FETCH {queue}"] * min(size, 500))
        fetched = [json.loads(r)["jid"] for r in replies if isinstance(r, bytes)]
        acks = conn.pipeline(f'ACK {{"jid":"{jid}"}}' for jid in fetched)
        assert all(reply == OK for reply in acks), acks
        jids += fetched
    raise AssertionError(f"queue {queue} never drained")


def requeue_sets(conn: Conn) -> None:
    """Move every job of the retries, scheduled and dead sets back to its queue."""
    for target in ("retries", "scheduled", "dead"):
        assert conn.call("MUTATE " + compact({"cmd": "requeue", "target": target})) == OK


def check_round(server: ServerProcess, ledger: Ledger) -> RoundResult:
    """Account for every job of the round on the restarted server; see the module docs."""
    with connect(server.host, server.port, timeout=30) as conn:
        assert conn.call("QUEUE REMOVE barrier") == OK
        requeue_sets(conn)
        found = drain(conn)
        seen = set(found)
        candidates = sorted((ledger.pushed_ok | ledger.unconfirmed | set(ledger.delivered)) - seen)
        probes = conn.pipeline(
            f"FAIL {compact({'jid': jid, 'errtype': 'Probe', 'message': 'probe'})}"
            for jid in candidates
        )
        working = {jid for jid, reply in zip(candidates, probes, strict=True) if reply == OK}
        for jid, reply in zip(candidates, probes, strict=True):
            if reply != OK and not is_error(reply, "not found"):
                ledger.violation(f"unexpected reply to a FAIL probe of {jid}: {reply!r}")
        requeue_sets(conn)
        found += drain(conn)
        barrier = {"jid": uuid.uuid4().hex, "jobtype": "Barrier", "args": [], "queue": "barrier"}
        assert conn.call(f"PUSH {json.dumps(barrier)}") == OK
        info = conn.info()["faktory"]
    return _account(ledger, found, working, info)


def _account(
    ledger: Ledger, found: list[str], working: set[str], info: dict[str, object]
) -> RoundResult:
    seen = set(found)
    copies = [jid for jid, n in Counter(found).items() if n > 1]
    if copies:
        ledger.violation(f"{len(copies)} jobs found twice, e.g. {copies[:3]}")
    # A job whose ACK was sent but not answered before the kill may be gone: the server
    # applied the ACK and died before replying. It is not lost: the worker ran it.
    lost = ledger.pushed_ok - ledger.ack_sent - seen
    if lost:
        example = sorted(lost)[0]
        ledger.violation(
            f"{len(lost)} confirmed jobs lost, e.g. {sorted(lost)[:3]}"
            f" ({example}: delivered {ledger.delivered[example]} times,"
            f" failed {example in ledger.failed_ok})"
        )
    invented = seen - ledger.pushed_ok - ledger.unconfirmed
    if invented:
        ledger.violation(f"{len(invented)} jobs nobody pushed, e.g. {sorted(invented)[:3]}")
    sets = info["sets"]
    queues = info["queues"]
    assert isinstance(sets, dict) and isinstance(queues, dict)
    leftover = {k: v for k, v in sets.items() if v} | {
        k: v for k, v in queues.items() if v and k != "barrier"
    }
    if leftover:
        ledger.violation(f"left over after the check: {leftover}")
    delivered = set(ledger.delivered)
    ack_lost = seen & ledger.acked_ok
    failed = seen & ledger.failed_ok
    in_flight = (seen & delivered) - ledger.acked_ok - ledger.failed_ok
    return RoundResult(
        round=ledger.round,
        pushed_ok=len(ledger.pushed_ok),
        acked_ok=len(ledger.acked_ok),
        failed_ok=len(ledger.failed_ok),
        found=len(seen),
        found_in_working=len(working),
        ack_lost=len(ack_lost),
        in_flight=len(in_flight),
        failed_retried=len(failed),
        push_unconfirmed=len(seen & (ledger.unconfirmed - ledger.pushed_ok)),
        ack_unanswered=len(ledger.ack_sent - ledger.acked_ok - seen),
        violations=list(ledger.violations),
    )


def run(
    data_dir: Path,
    rounds: int,
    storage: str | None = None,
    seed: int | None = None,
    min_load: float = 0.2,
    max_load: float = 1.5,
    report: bool = False,
) -> list[RoundResult]:
    """Run ``rounds`` kill/restart rounds on one data directory (or Redis URL)."""
    rng = random.Random(seed)
    extra = ["--storage", storage] if storage else []
    server = ServerProcess(data_dir, extra_args=extra)
    server.start()
    results: list[RoundResult] = []
    try:
        for number in range(rounds):
            ledger = Ledger(number)
            run_load(server, ledger, rng.uniform(min_load, max_load))
            server.start()
            result = check_round(server, ledger)
            results.append(result)
            if report:
                print(result.line(), flush=True)
                for text in result.violations:
                    print("   ", text, flush=True)
    finally:
        server.kill()
    return results


def summary(results: list[RoundResult]) -> str:
    """One paragraph over all rounds."""

    def total(name: str) -> int:
        return sum(getattr(r, name) for r in results)

    return (
        f"{len(results)} rounds: {total('pushed_ok')} jobs confirmed, {total('acked_ok')} "
        f"ACKs confirmed, {total('failed_ok')} FAILs confirmed; found after the kills "
        f"{total('found')} ({total('found_in_working')} still reserved); delivered again "
        f"after a kill: {total('ack_lost')} ACKed before the kill (ACK not yet committed), "
        f"{total('in_flight')} in flight; {total('push_unconfirmed')} pushed but unconfirmed; "
        f"{total('ack_unanswered')} ACKed by the server just before the kill (no reply); "
        f"violations: {sum(len(r.violations) for r in results)}"
    )


def _redis_prefix_cleanup(prefix: str) -> None:
    from tests.conftest import delete_prefix

    delete_prefix(prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "redis", "both"], default="sqlite")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-load", type=float, default=1.5, help="longest load phase, s")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    backends = ["sqlite", "redis"] if args.backend == "both" else [args.backend]
    failed = False
    for backend in backends:
        print(f"== {backend}, {args.rounds} rounds, seed {seed}", flush=True)
        with tempfile.TemporaryDirectory(prefix="werk-crash-") as tmp:
            storage = None
            prefix = f"werkcrash:{uuid.uuid4().hex}:"
            if backend == "redis":
                storage = f"{REDIS_URL}?prefix={prefix}"
            try:
                results = run(
                    Path(tmp) / "data",
                    args.rounds,
                    storage,
                    seed,
                    max_load=args.max_load,
                    report=True,
                )
            finally:
                if storage:
                    _redis_prefix_cleanup(prefix)
        print(summary(results), flush=True)
        failed = failed or any(r.violations for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
