"""Kind 2 of issue 13: JSON depth has one documented limit, enforced where JSON enters.

Every verb refuses a document nested past :data:`werk.protocol.jsonwire.MAX_DEPTH` with an
error naming the limit, and a job at the limit is shown by every web page (status 200). A
stored job that cannot be shown never takes its page down.
"""

from __future__ import annotations

import json
from typing import Any

from tests.badinput.conftest import OK, AsyncPeer, Web, seed, snapshot
from tests.helpers import Peer, error_text
from werk.protocol.jsonwire import MAX_DEPTH
from werk.storage.base import Entry, Scored

LIMIT_TEXT = f"JSON nested deeper than {MAX_DEPTH} levels (the limit)"


def deep(levels: int) -> str:
    """JSON text of ``levels`` nested arrays (1 is ``[]``)."""
    return "[" * levels + "]" * levels


def job_text(jid: str, depth: int, **fields: Any) -> str:
    """A job whose whole document nests exactly ``depth`` levels (the object is one)."""
    extra = "".join(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in fields.items())
    return f'{{"jid":"{jid}","jobtype":"Deep","args":{deep(depth - 1)}{extra}}}'


def deep_lines(levels: int) -> list[str]:
    nest = deep(levels)
    return [
        f'PUSH {{"jid":"abcdefghij12","jobtype":"D","args":{nest}}}',
        f'PUSHB [{{"jid":"abcdefghij12","jobtype":"D","args":{nest}}}]',
        f'ACK {{"jid":"abcdefghij12","x":{nest}}}',
        f'FAIL {{"jid":"abcdefghij12","backtrace":{nest}}}',
        f'BEAT {{"wid":"w","x":{nest}}}',
        f'MUTATE {{"cmd":"discard","target":"dead","filter":{nest}}}',
        f'TRACK SET {{"jid":"abcdefghij12","desc":{nest}}}',
        f'LIMIT ACQUIRE {{"name":"n","limit":1,"holder":"h","x":{nest}}}',
        f'BATCH NEW {{"success":{{"jobtype":"S","args":{nest}}}}}',
        f'JOBS {{"target":"dead","filter":{{"jids":{nest}}}}}',
    ]


def test_every_verb_refuses_a_deep_document_naming_the_limit(peer: Peer) -> None:
    before = seed(peer)
    for levels in (MAX_DEPTH + 1, 1000, 100_000):
        for line in deep_lines(levels):
            assert error_text(peer.call(line)) == f"ERR {LIMIT_TEXT}", line[:40]
            assert snapshot(peer) == before, line[:40]


def test_a_job_one_past_the_limit_is_refused_at_the_limit_accepted(peer: Peer) -> None:
    assert error_text(peer.call("PUSH " + job_text("too-deep-1", MAX_DEPTH + 1))) == (
        f"ERR {LIMIT_TEXT}"
    )
    assert peer.call("PUSH " + job_text("deepest-01", MAX_DEPTH)) == OK
    # PUSHB's array is one more level: each job may still nest to the limit.
    assert peer.call("PUSHB [" + job_text("deepest-02", MAX_DEPTH) + "]") == b"{}"
    assert snapshot(peer)["queues"] == {"default": 2}


async def pages_ok(web: Web, paths: list[str], jid: str) -> None:
    for path in paths:
        response = await web.client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert jid in response.text, path


async def test_a_job_at_the_limit_renders_on_every_page(web: Web) -> None:
    port = web.server.port
    producer = await AsyncPeer.connect(port)
    worker = await AsyncPeer.connect(port, wid="deep-worker", hostname="h", pid=1)
    try:
        # Given a job nested exactly to the limit, waiting in its queue
        assert await producer.call("PUSH " + job_text("deepest-01", MAX_DEPTH)) == OK
        await pages_ok(web, ["/queues", "/queues/default"], "default")
        assert (await web.client.get("/")).status_code == 200
        await pages_ok(web, ["/queues/default"], "deepest-01")
        # When a worker runs it, the Busy page shows it
        fetched = await worker.call("FETCH default")
        assert isinstance(fetched, bytes) and json.loads(fetched)["jid"] == "deepest-01"
        await pages_ok(web, ["/busy"], "deepest-01")
        # After a FAIL it is on the Retries pages, killed it is on the Dead pages
        assert await worker.call('FAIL {"jid":"deepest-01","message":"boom"}') == OK
        await pages_ok(web, ["/retries", "/retries/deepest-01"], "deepest-01")
        kill = {"cmd": "kill", "target": "retries", "filter": {"jids": ["deepest-01"]}}
        assert await producer.call("MUTATE " + json.dumps(kill)) == OK
        await pages_ok(web, ["/dead", "/dead/deepest-01", "/morgue/deepest-01"], "deepest-01")
        # A scheduled one is on the Scheduled pages
        later = job_text("deepest-02", MAX_DEPTH, at="2099-01-01T00:00:00Z")
        assert await producer.call("PUSH " + later) == OK
        await pages_ok(web, ["/scheduled", "/scheduled/deepest-02"], "deepest-02")
        # One level more is refused with the documented error
        reply = await producer.call("PUSH " + job_text("too-deep-01", MAX_DEPTH + 1))
        assert error_text(reply) == f"ERR {LIMIT_TEXT}"
    finally:
        await producer.close()
        await worker.close()


async def test_a_job_no_page_can_show_does_not_take_the_page_down(web: Web) -> None:
    # Given the dead set holds, beside a normal job, jobs stored before today's checks:
    # one nested 975 deep, one that is not JSON, one with a failure of the wrong shape.
    await web.fail("normal-job-1", retry=-1)
    bad = {
        "deep-stored-1": job_text("deep-stored-1", 975).encode(),
        "not-json-001": b'{"jid":"not-json-001",',
        "odd-failure1": b'{"jid":"odd-failure1","jobtype":"T","args":[],'
        b'"failure":{"message":5,"errtype":[],"backtrace":3,"retry_count":"x"}}',
    }
    await web.server.store.add(
        "dead",
        [Scored(1e10, Entry(jid, "default", "T", 5, 1800, body)) for jid, body in bad.items()],
    )
    # Then the list and each job's page answer 200, the good job shown in full
    await pages_ok(web, ["/dead"], "normal-job-1")
    for jid in bad:
        await pages_ok(web, ["/dead", f"/dead/{jid}"], jid)
    await pages_ok(web, ["/dead/normal-job-1"], "boom normal-job-1")


async def test_a_deep_stored_job_in_a_queue_and_running(web: Web) -> None:
    # Given a queue holding, beside a normal job, one stored 975 deep before today's checks
    await web.push("normal-job-2")
    body = job_text("deep-queued1", 975).encode()
    await web.server.store.enqueue([Entry("deep-queued1", "default", "T", 5, 1800, body)], 0.0)
    # Then the queue page shows both
    await pages_ok(web, ["/queues/default"], "normal-job-2")
    await pages_ok(web, ["/queues/default"], "deep-queued1")
    # And while both run, the Busy page shows both
    for _ in range(2):
        assert await web.server.manager.fetch(["default"], "w1", timeout=0) is not None
    await pages_ok(web, ["/busy"], "normal-job-2")
    await pages_ok(web, ["/busy"], "deep-queued1")
