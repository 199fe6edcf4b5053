"""SQLite-only behaviour: group commit, crash durability, the directory lock, refusing
damaged files, a full disk, and a 100k-job sanity run. The shared contract is in
test_contract.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from werk.errors import StorageError, StoreCorruptError
from werk.storage.base import Entry, Reservation, Scored
from werk.storage.sqlite import SqliteStore, queues
from werk.storage.sqlite.batch import Batch
from werk.storage.sqlite.writer import RETRY_HELD

NOW = 1_700_000_000.0


def entry(jid: str, queue: str = "default", size: int = 0) -> Entry:
    body = b'{"jid":"%s","jobtype":"Work","args":["%s"]}' % (jid.encode(), b"x" * size)
    return Entry(jid, queue, "Work", 5, 1800, body)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path)
    await opened.open()
    yield opened
    await opened.close()


async def test_group_commit_batches_concurrent_writes(store: SqliteStore) -> None:
    before = store.commits
    await asyncio.gather(*(store.enqueue([entry(f"j{i}")], NOW) for i in range(1000)))
    commits = store.commits - before
    assert 1 <= commits < 100, commits
    assert (await store.queue_sizes())["default"] == 1000


async def test_writes_of_one_loop_iteration_share_one_commit(store: SqliteStore) -> None:
    # Given 16 producers, each pushing one job at a time and waiting for its commit
    async def producer(number: int) -> None:
        for k in range(3):
            await store.enqueue([entry(f"p{number}-{k}")], NOW)

    before = store.commits
    # When they all start in one loop iteration
    await asyncio.gather(*(producer(number) for number in range(16)))
    # Then each round of their pushes is handed to the writer at once and commits once
    # (a commit answers all 16; they push again in the same iteration)
    assert store.commits - before == 3
    assert (await store.queue_sizes())["default"] == 48


async def test_database_file_and_schema(store: SqliteStore, tmp_path: Path) -> None:
    assert (tmp_path / "werk.sqlite3").exists()
    with sqlite3.connect(tmp_path / "werk.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        names = [row[0] for row in conn.execute("SELECT name FROM migrations")]
    conn.close()
    assert names[0] == "0001_initial"


async def test_creates_missing_directory(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a" / "b")
    await store.open()
    await store.enqueue([entry("a")], NOW)
    await store.close()
    assert (tmp_path / "a" / "b" / "werk.sqlite3").exists()


async def test_second_open_is_refused_until_close(store: SqliteStore, tmp_path: Path) -> None:
    other = SqliteStore(tmp_path)
    with pytest.raises(StorageError, match="in use by another Werk server"):
        await other.open()
    await store.close()
    await other.open()
    await other.close()


async def test_close_commits_fetch_and_ack(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    await store.enqueue([entry("a"), entry("b")], NOW)
    res = await store.fetch(["default"], NOW, "w1")
    assert res is not None
    await store.ack("a", NOW)
    res = await store.fetch(["default"], NOW, "w1")
    await store.close()
    with pytest.raises(StorageError, match="not open"):
        await store.enqueue([entry("c")], NOW)
    again = SqliteStore(tmp_path)
    await again.open()
    assert await again.queue_sizes() == {"default": 0}
    assert await again.reservation("a") is None
    assert await again.reservation("b") is not None
    assert (await again.counters()).processed == 1
    await again.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from werk.storage.sqlite import SqliteStore
    from werk.storage.base import Entry

    async def pusher(store, name):
        i = 0
        while True:
            batch = [Entry(f"{name}-{i}-{k}", "default", "Work", 5, 1800, b"{}") for k in range(5)]
            await store.enqueue(batch, 1.0)
            print(" ".join(e.jid for e in batch), flush=True)
            i += 1

    async def main():
        store = SqliteStore(Path(sys.argv[1]))
        await store.open()
        await asyncio.gather(*(pusher(store, f"t{n}") for n in range(4)))

    asyncio.run(main())
    """
)


async def test_confirmed_jobs_survive_sigkill(tmp_path: Path) -> None:
    # Given a server process that prints each batch once enqueue confirmed it
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    confirmed: list[str] = []
    for line in proc.stdout:
        confirmed.extend(line.split())
        if len(confirmed) >= 2000:
            break
    # When it is killed without any chance to clean up
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate()
    for line in rest.split("\n")[:-1]:  # the text after the last newline may be cut short
        confirmed.extend(line.split())
    # Then every confirmed job is there after reopening
    store = SqliteStore(tmp_path)
    await store.open()
    size = (await store.queue_sizes())["default"]
    found = {q.entry.jid for q in await store.queue_page("default", 0, size)}
    await store.close()
    assert set(confirmed) <= found
    assert len(confirmed) >= 2000


async def test_garbage_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "werk.sqlite3").write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(StoreCorruptError, match="werk.sqlite3"):
        await SqliteStore(tmp_path).open()
    # The lock was released: a fixed directory can be opened later.
    (tmp_path / "werk.sqlite3").unlink()
    store = SqliteStore(tmp_path)
    await store.open()
    await store.close()


async def test_truncated_file_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    await store.enqueue([entry(f"j{i}", size=200) for i in range(2000)], NOW)
    await store.add("dead", [Scored(NOW + i, entry(f"d{i}", size=200)) for i in range(500)])
    await store.close()
    path = tmp_path / "werk.sqlite3"
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StoreCorruptError, match="werk.sqlite3"):
        await SqliteStore(tmp_path).open()
    assert path.stat().st_size == size // 2  # refused, never reset


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "werk.sqlite3")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="not a Werk database"):
        await SqliteStore(tmp_path).open()


async def test_disk_full_fails_the_batch_and_recovers(store: SqliteStore) -> None:
    # Given a database capped a few pages above its size (SQLITE_FULL, as a full disk)
    writer = store._writer
    assert writer is not None
    await store.enqueue([entry("before")], NOW)

    def cap(b: Batch) -> int:
        pages: int = b.conn.execute("PRAGMA page_count").fetchone()[0]
        b.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return pages

    await writer.call(cap)
    # When a big write and a small one arrive together
    big = [entry(f"big{i}", size=4000) for i in range(50)]
    results = await asyncio.gather(
        store.enqueue(big, NOW), store.enqueue([entry("small")], NOW), return_exceptions=True
    )
    # Then the big one fails with StorageError, nothing of it is queued, reads still work
    assert isinstance(results[0], StorageError)
    assert "full" in str(results[0])
    assert results[1] is None
    assert [q.entry.jid for q in await store.queue_page("default", 0, 100)] == ["before", "small"]
    res = await store.fetch(["default"], NOW, "w1")
    assert res is not None and res.entry.jid == "before"
    with pytest.raises(StorageError):
        await store.add("dead", [Scored(NOW, e) for e in big])
    assert await store.set_size("dead") == 0
    # And once space is back, the same writes work
    await writer.call(lambda b: b.conn.execute("PRAGMA max_page_count = 1073741823") and None)
    await store.enqueue(big, NOW)
    assert (await store.queue_sizes())["default"] == 51
    assert await store.ack("before", NOW) is not None


async def test_unknown_durability_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(tmp_path, durability="sometimes")


async def test_hundred_thousand_jobs(store: SqliteStore, tmp_path: Path) -> None:
    total = 100_000
    start = time.perf_counter()
    for base in range(0, total, 1000):
        await store.enqueue([entry(f"j{base + i}") for i in range(1000)], NOW)
    pushed = time.perf_counter()
    assert (await store.queue_sizes())["default"] == total
    seen = 0
    while (res := await store.fetch(["default"], NOW, "w1")) is not None:
        assert res.entry.jid == f"j{seen}"
        assert await store.ack(res.entry.jid, NOW) is not None
        seen += 1
    done = time.perf_counter()
    assert seen == total
    assert (await store.counters()).processed == total
    print(f"push {total / (pushed - start):,.0f}/s, fetch+ack {total / (done - pushed):,.0f}/s")
    await store.close()
    again = SqliteStore(tmp_path)
    await again.open()
    assert await again.queue_sizes() == {"default": 0}
    assert await again.working_size() == 0
    await again.close()


async def test_os_mode_commits_in_call_order_on_the_loop_and_the_thread(tmp_path: Path) -> None:
    # Given an os-mode store, where small batches commit on the loop and big ones (and
    # everything while the thread is busy) on the writer thread
    store = SqliteStore(tmp_path, durability="os")
    await store.open()
    try:
        # When single pushes, a big batch and FETCH/ACK background writes interleave
        await asyncio.gather(*(store.enqueue([entry(f"one-{i:04d}")], NOW) for i in range(50)))
        await store.enqueue([entry(f"big-{i:04d}") for i in range(500)], NOW)
        fetched = [await store.fetch(["default"], NOW, "w1") for _ in range(300)]
        jids = [res.entry.jid for res in fetched if res is not None]
        # (an ACK burst between two pushes of one loop iteration: its background write
        # joins the batch the loop gathers, and its 200 rows send that batch to the thread)
        await asyncio.gather(
            store.enqueue([entry("two-0000")], NOW),
            *(store.ack(jid, NOW) for jid in jids[:200]),
            *(store.enqueue([entry(f"two-{i:04d}")], NOW) for i in range(1, 50)),
        )
    finally:
        await store.close()
    # Then, after a restart, every write is there, in order
    again = SqliteStore(tmp_path, durability="os")
    await again.open()
    try:
        assert (await again.queue_sizes())["default"] == 50 + 500 + 50 - 300
        assert await again.working_size() == 100
        assert (await again.counters()).processed == 200
        first = await again.fetch(["default"], NOW, "w2")
        assert first is not None and first.entry.jid == "big-0250"
    finally:
        await again.close()


class GatedConnection(sqlite3.Connection):
    """A real SQLite connection whose COMMIT waits for the test (or fails when told), to
    watch what happens while a commit (its fsync) is still going."""

    gate: threading.Event
    fail: bool = False
    insert_gate: threading.Event | None = None
    """When set, the writing of job rows waits for it (and fails when ``fail`` is set)."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            assert self.gate.wait(10)
            if self.fail:
                raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.insert_gate is not None and sql.startswith("INSERT INTO jobs"):
            assert self.insert_gate.wait(10)
            if self.fail:
                raise sqlite3.OperationalError("database or disk is full")
        return super().executemany(sql, *args)


def gate_commits(store: SqliteStore) -> GatedConnection:
    """Give the store's writer thread a gated connection of its own to the same file."""
    conn = sqlite3.connect(
        store.path, isolation_level=None, check_same_thread=False, factory=GatedConnection
    )
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.gate = threading.Event()
    writer = store._writer
    assert writer is not None
    writer._conn.close()
    writer._conn = conn
    store.on_available(lambda queues: None, lambda queues: True)  # a FETCH waits
    return conn


async def until_fetched(store: SqliteStore) -> Reservation:
    for _ in range(10_000):
        found = await store.fetch(["default"], NOW, "w1")
        if found is not None:
            return found
        await asyncio.sleep(0.001)
    raise AssertionError("the job never became fetchable")


async def test_a_pushed_job_is_fetchable_while_its_commit_runs(store: SqliteStore) -> None:
    # Given a commit that takes as long as the test wants (a slow fsync)
    conn = gate_commits(store)
    before = store.commits
    push = asyncio.create_task(store.enqueue([entry("early")], NOW))
    # When a FETCH looks while the PUSH's commit is still going
    reservation = await until_fetched(store)
    # Then it gets the job, though the PUSH is not answered yet (that is after the commit)
    assert reservation.entry.jid == "early"
    assert not push.done() and store.commits == before
    conn.gate.set()
    await push
    assert store.commits == before + 1
    # and the reservation, written after the job's commit, holds it: the ACK drops it
    assert await store.ack("early", NOW) is not None


async def test_a_job_shown_before_a_failed_commit_is_taken_back(store: SqliteStore) -> None:
    # Given two jobs pushed in one commit that will fail (a full disk, say)
    conn = gate_commits(store)
    conn.fail = True
    push = asyncio.create_task(store.enqueue([entry("a"), entry("b")], NOW))
    # When a worker fetched one of them before the commit ended
    taken = await until_fetched(store)
    assert taken.entry.jid == "a"
    conn.gate.set()
    with pytest.raises(StorageError, match="disk is full"):
        await push
    # Then the PUSH is refused, the other job left its queue, and the fetched one's
    # reservation is gone (its ACK finds no job), as if neither had been pushed
    assert (await store.queue_sizes()).get("default", 0) == 0
    assert await store.fetch(["default"], NOW, "w1") is None
    assert await store.ack("a", NOW) is None
    conn.fail = False
    await store.enqueue([entry("c")], NOW)  # the store works on
    assert (await until_fetched(store)).entry.jid == "c"


async def test_a_waiting_fetch_gets_a_pushed_job_before_its_row_is_written(
    store: SqliteStore,
) -> None:
    # Given a writer thread that has not written the job's row yet
    conn = gate_commits(store)
    conn.insert_gate = threading.Event()
    push = asyncio.create_task(store.enqueue([entry("first")], NOW))
    # When a FETCH looks (a FETCH was waiting when the PUSH came)
    reservation = await until_fetched(store)
    # Then it has the job already, and the PUSH waits for the write and the commit
    assert reservation.entry.jid == "first" and not push.done()
    conn.insert_gate.set()
    conn.gate.set()
    await push
    assert await store.ack("first", NOW) is not None


async def test_a_job_shown_before_a_failed_write_is_taken_back(store: SqliteStore) -> None:
    # Given a job shown to a FETCH, whose row then cannot be written (a full disk)
    conn = gate_commits(store)
    conn.insert_gate = threading.Event()
    conn.fail = True
    push = asyncio.create_task(store.enqueue([entry("a"), entry("b")], NOW))
    assert (await until_fetched(store)).entry.jid == "a"
    conn.insert_gate.set()
    conn.gate.set()
    # Then the PUSH is refused and neither job is left: not queued, not reserved
    with pytest.raises(StorageError, match="disk is full"):
        await push
    assert await store.fetch(["default"], NOW, "w1") is None
    assert await store.ack("a", NOW) is None
    conn.fail = False
    conn.insert_gate = None
    await store.enqueue([entry("c")], NOW)  # the store works on, ids still unique
    assert (await until_fetched(store)).entry.jid == "c"


async def test_pushed_bodies_kept_in_memory_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store that keeps at most 1,000 bytes of pushed bodies until they are fetched
    monkeypatch.setattr(queues, "BODY_CACHE_BYTES", 1000)
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        # When ten jobs of about 350 bytes each are pushed
        for number in range(10):
            await store.enqueue([entry(f"big{number}", size=300)], NOW)
        # Then only the first three are kept (the third passes the limit), and every job
        # is fetched whole all the same, the others read back from the database
        assert len(store._bodies) == 3 and store._bodies.held > 1000
        fetched = [await store.fetch(["default"], NOW, "w1") for _ in range(10)]
        assert [res.entry for res in fetched if res] == [
            entry(f"big{number}", size=300) for number in range(10)
        ]
        assert len(store._bodies) == 0 and store._bodies.held == 0
    finally:
        await store.close()


async def test_os_mode_commits_a_lone_write_without_a_pass_of_the_loop(tmp_path: Path) -> None:
    # Given an os-mode store with nothing else being written
    store = SqliteStore(tmp_path, durability="os")
    await store.open()
    try:
        before = store.commits
        # When one push runs: it completes without ever yielding to the event loop
        push = store.enqueue([entry("lone")], NOW)
        with pytest.raises(StopIteration):
            push.send(None)
        # Then its commit is done and the job is queued
        assert store.commits == before + 1
        assert (await store.queue_sizes())["default"] == 1
    finally:
        await store.close()


async def test_os_mode_gathers_writes_that_meet_in_one_pass(tmp_path: Path) -> None:
    # Given an os-mode store and 16 producers, each pushing one job at a time
    store = SqliteStore(tmp_path, durability="os")
    await store.open()

    async def producer(number: int) -> None:
        for k in range(3):
            await store.enqueue([entry(f"p{number}-{k}")], NOW)

    try:
        before = store.commits
        # When they all start in one pass of the loop
        await asyncio.gather(*(producer(number) for number in range(16)))
        # Then only the first write commits alone; the others share commits (48 pushes,
        # not 48 commits), and every job is there
        assert store.commits - before <= 6, store.commits - before
        assert (await store.queue_sizes())["default"] == 48
    finally:
        await store.close()


async def fetch_one(store: SqliteStore, jid: str, then: str | None = None) -> None:
    """Push ``jid`` and fetch it; then push ``then``, whose commit follows the reservation's
    (so the reservation is on disk when it returns)."""
    await store.enqueue([entry(jid)], NOW)
    assert (await until_fetched(store)).entry.jid == jid
    if then is not None:
        await store.enqueue([entry(then)], NOW)


async def test_an_ack_whose_commit_failed_is_kept_and_committed_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a fetched job whose reservation is on disk
    store = SqliteStore(tmp_path)
    await store.open()
    conn = gate_commits(store)
    conn.gate.set()
    await fetch_one(store, "kept", then="later")
    # When its ACK (answered at once, written in the background) cannot be committed
    conn.fail = True
    assert await store.ack("kept", NOW) is not None
    for _ in range(1000):
        if caplog.records:
            break
        await asyncio.sleep(0.005)
    assert "FETCH/ACK writes could not be committed" in caplog.text
    # and the disk has room again (the write is tried again within RETRY_HELD seconds)
    conn.fail = False
    committed = store.commits
    for _ in range(1000):
        if store.commits > committed:
            break
        await asyncio.sleep(0.005)
    await store.close()
    # Then after a restart the ACKed job is gone, as its +OK said
    again = SqliteStore(tmp_path)
    await again.open()
    try:
        assert await again.working_size() == 0
        assert (await again.queue_sizes())["default"] == 1  # "later" only
    finally:
        await again.close()


async def test_acks_still_held_at_the_stop_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a fetched job, and a disk that fails every commit from then on
    store = SqliteStore(tmp_path)
    await store.open()
    conn = gate_commits(store)
    conn.gate.set()
    await fetch_one(store, "lost")
    conn.fail = True
    # When it is ACKed and the server stops before any commit succeeds
    assert await store.ack("lost", NOW) is not None
    await store.close()
    # Then the stop says what it could not keep
    assert "could not be committed before the stop" in caplog.text


class TooFullForReservations(sqlite3.Connection):
    """A disk with room for small writes only: while ``full``, a COMMIT of a transaction
    that wrote ``working`` rows (a backlog of held FETCH/ACK writes) fails; others commit."""

    full = False
    touched = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE":
            self.touched = False
        if sql == "COMMIT" and self.full and self.touched:
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.touched = self.touched or "working" in sql
        return super().executemany(sql, *args)


class FailingCommits(sqlite3.Connection):
    """The next ``fails_left`` COMMITs wait for ``gate``, then fail (a full disk)."""

    gate: threading.Event
    fails_left = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fails_left:
            assert self.gate.wait(10)
            self.fails_left -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def writer_connection(store: SqliteStore, factory: type[sqlite3.Connection]) -> Any:
    """Give the store's writer a connection of class ``factory`` to the same file."""
    conn = sqlite3.connect(
        store.path, isolation_level=None, check_same_thread=False, factory=factory
    )
    conn.execute("PRAGMA busy_timeout = 5000")
    writer = store._writer
    assert writer is not None
    writer._conn.close()
    writer._conn = conn
    return conn


async def test_held_acks_do_not_fail_the_writes_after_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an ACK whose write is held because the disk cannot take it
    store = SqliteStore(tmp_path)
    await store.open()
    conn = writer_connection(store, TooFullForReservations)
    try:
        await fetch_one(store, "a", then="b")
        conn.full = True
        assert await store.ack("a", NOW) is not None
        for _ in range(1000):
            if "could not be committed" in caplog.text:
                break
            await asyncio.sleep(0.005)
        assert "could not be committed" in caplog.text
        # When pushes come that the disk has room for
        # Then they are stored: the held backlog is not written in their transactions
        for number in range(5):
            await store.enqueue([entry(f"p{number}")], NOW)
    finally:
        conn.full = False
        await store.close()


async def test_a_held_reservation_is_not_written_after_its_jobs_fail(tmp_path: Path) -> None:
    # Given a fetched job whose reservation's commit fails after the job's FAIL was sent
    store = SqliteStore(tmp_path)
    await store.open()
    conn = writer_connection(store, FailingCommits)
    conn.gate = threading.Event()
    try:
        await store.enqueue([entry("x")], NOW)
        conn.fails_left = 1
        await until_fetched(store)
        await asyncio.sleep(0.05)  # the reservation's commit waits on the gate
        fail = asyncio.create_task(store.fail("x", NOW, None))
        await asyncio.sleep(0.05)
        conn.gate.set()
        assert await fail
        # When the held reservation is tried again, after the FAIL committed
        await asyncio.sleep(RETRY_HELD + 0.5)
    finally:
        await store.close()
    # Then no reservation is left for a job that is no longer stored
    with sqlite3.connect(store.path) as check:
        assert check.execute("SELECT jid FROM working").fetchall() == []


async def test_no_retry_of_held_writes_runs_after_the_stop(tmp_path: Path) -> None:
    # Given ACK writes held by a disk that fails every commit
    loop = asyncio.get_running_loop()
    errors: list[Any] = []
    loop.set_exception_handler(lambda _, context: errors.append(context.get("message")))
    store = SqliteStore(tmp_path)
    await store.open()
    conn = writer_connection(store, FailingCommits)
    conn.gate = threading.Event()
    conn.gate.set()
    await fetch_one(store, "x", then="y")
    conn.fails_left = 1000
    assert await store.ack("x", NOW) is not None
    await asyncio.sleep(0.1)
    # When the store closes with its retry timer armed
    await store.close()
    await asyncio.sleep(RETRY_HELD + 0.3)
    loop.set_exception_handler(None)
    # Then no callback fails after the stop
    assert not errors, errors
