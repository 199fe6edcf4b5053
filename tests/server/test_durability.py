"""Durability: whatever got +OK survives SIGKILL, and reservations survive a restart."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.helpers import Peer, ServerProcess, push_line
from werk.protocol.resp import Simple

OK = Simple("OK")


def info(conn: Peer) -> dict[str, Any]:
    raw = conn.call("INFO")
    assert isinstance(raw, bytes)
    doc: dict[str, Any] = json.loads(raw)
    return doc


def test_every_acknowledged_push_survives_sigkill(werk_server: ServerProcess) -> None:
    # Given: 500 pushed jobs, one of them fetched (reserved) and not yet acknowledged.
    conn = Peer(werk_server.host, werk_server.port)
    assert conn.hello() == OK
    conn.send("".join(push_line(f"dur-{i:05d}") + "\r\n" for i in range(500)))
    assert all(conn.reply() == OK for _ in range(500))
    fetched = conn.call("FETCH default")
    assert isinstance(fetched, bytes)
    jid = json.loads(fetched)["jid"]
    time.sleep(0.3)  # let the reservation's commit land, as above
    # When: the server is killed without any chance to clean up, then restarted.
    werk_server.kill()
    werk_server.start()
    # Then: every job is still there, and the fetched job is still reserved.
    after = Peer(werk_server.host, werk_server.port)
    assert after.hello() == OK
    doc = info(after)["faktory"]
    assert doc["queues"]["default"] == 499 and doc["sets"]["working"] == 1
    assert after.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == OK
    assert info(after)["faktory"]["sets"]["working"] == 0


def test_a_job_fetched_before_the_crash_can_fail_after_it(werk_server: ServerProcess) -> None:
    conn = Peer(werk_server.host, werk_server.port)
    assert conn.hello() == OK
    assert conn.call(push_line("crash-001")) == OK
    assert isinstance(conn.call("FETCH default"), bytes)
    # A FETCH is answered before its reservation is committed (at-least-once allows it:
    # a crash before the commit leaves the job queued); give the commit a moment.
    time.sleep(0.3)
    werk_server.kill()
    werk_server.start()
    after = Peer(werk_server.host, werk_server.port)
    assert after.hello() == OK
    assert after.call('FAIL {"jid":"crash-001","message":"x"}') == OK
    assert info(after)["faktory"]["sets"]["retries"] == 1


def test_kill_during_a_push_stream_loses_no_acknowledged_job(
    werk_server: ServerProcess,
) -> None:
    # Given: four producers pushing as fast as they can.
    acknowledged: list[str] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        conn = Peer(werk_server.host, werk_server.port)
        conn.hello()
        for i in range(100_000):
            jid = f"stream-{worker}-{i:06d}"
            try:
                if conn.call(push_line(jid)) != OK:
                    return
            except OSError:
                return
            with lock:
                acknowledged.append(jid)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    # When: the server is SIGKILLed mid-stream.
    while len(acknowledged) < 2000:
        threading.Event().wait(0.01)
    werk_server.kill()
    for thread in threads:
        thread.join(10)
    werk_server.start()
    # Then: every jid that got +OK is in the queue.
    conn = Peer(werk_server.host, werk_server.port)
    assert conn.hello() == OK
    found: set[str] = set()
    while (job := conn.call("FETCH default")) is not None:
        assert isinstance(job, bytes)
        found.add(json.loads(job)["jid"])
        if len(found) >= len(acknowledged) + 8:
            break
    missing = set(acknowledged) - found
    assert not missing, f"{len(missing)} acknowledged jobs lost"
