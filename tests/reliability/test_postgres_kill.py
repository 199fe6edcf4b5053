"""SIGKILL of a ``werk server`` on PostgreSQL: nothing acknowledged or committed is lost.

Given: producers PUSH over the protocol (keeping every jid answered ``+OK``) while an
application commits transactional pushes through ``werk.client.postgres`` (keeping every
jid whose transaction committed), and the server is taking intake rows as they come.
When: the server is SIGKILLed mid-stream; the application goes on committing while Werk
is down; the server starts again on the same schema.
Then: every ``+OK``'d jid and every committed transactional jid is fetched, and no
transactional jid twice (the intake hands each committed row over exactly once).
"""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path

import psycopg

from tests import pg
from tests.helpers import Peer, ServerProcess, push_line
from werk.client import Job
from werk.client import postgres as werk_pg
from werk.protocol.resp import Simple

OK = Simple("OK")


class Producers:
    """Protocol producers and transactional committers, each recording what was promised."""

    def __init__(self, server: ServerProcess, schema: str) -> None:
        self.server = server
        self.schema = schema
        self.acknowledged: list[str] = []
        self.committed: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def push(self, worker: int) -> None:
        conn = Peer(self.server.host, self.server.port)
        conn.hello()
        for i in range(100_000):
            jid = f"ok-{worker}-{i:06d}"
            try:
                if conn.call(push_line(jid)) != OK:
                    return
            except OSError:
                return
            with self.lock:
                self.acknowledged.append(jid)

    def commit(self, worker: int) -> None:
        with psycopg.connect(pg.pg_url()) as conn:
            i = 0
            while not self.stop.is_set():
                jids = [f"tx-{worker}-{i:06d}-{n}" for n in range(3)]
                with conn.transaction():
                    for jid in jids:
                        werk_pg.push(conn, Job("T", [], jid=jid), schema=self.schema)
                with self.lock:
                    self.committed.extend(jids)
                i += 1
                self.stop.wait(0.005)  # an application's pace, not a flood


def test_sigkill_loses_no_acknowledged_or_committed_job(
    tmp_path: Path, shared_postgres: str
) -> None:
    schema = shared_postgres.rsplit("schema=", 1)[1]
    server = ServerProcess(tmp_path / "data", extra_args=["--storage", shared_postgres]).start()
    producers = Producers(server, schema)
    threads = [threading.Thread(target=producers.push, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=producers.commit, args=(n,)) for n in range(2)]
    try:
        for thread in threads:
            thread.start()
        # When: SIGKILL once both kinds of promise have piled up
        while len(producers.acknowledged) < 1500 or len(producers.committed) < 300:
            threading.Event().wait(0.01)
        server.kill()
        committed_while_down = len(producers.committed)
        while len(producers.committed) < committed_while_down + 30:
            threading.Event().wait(0.01)  # the application does not wait for Werk
        server.start()
        producers.stop.set()
        for thread in threads:
            thread.join(20)
        # Then: every promised jid comes out of the queue
        conn = Peer(server.host, server.port)
        assert conn.hello() == OK
        seen: collections.Counter[str] = collections.Counter()
        expected = set(producers.acknowledged) | set(producers.committed)
        while (job := conn.call("FETCH default")) is not None:
            assert isinstance(job, bytes)
            seen[json.loads(job)["jid"]] += 1
        missing = expected - set(seen)
        assert not missing, f"{len(missing)} of {len(expected)} promised jobs lost"
        twice = [jid for jid, n in seen.items() if n > 1 and jid.startswith("tx-")]
        assert not twice, f"transactional jobs handed over twice: {twice[:5]}"
    finally:
        producers.stop.set()
        server.kill()
