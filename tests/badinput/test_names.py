"""Names that no queue, job or batch can have, on every backend: a clear answer, the same on
each store, and nothing changed. A name holding NUL reached PostgreSQL, which refuses NUL in
text (``-ERR storage error``) where SQLite and Redis answered; a queue name breaking
Faktory's rule could be paused, and a batch callback with such a queue was taken at BATCH
NEW and refused only when it fired (so it was never pushed)."""

from __future__ import annotations

import json
from typing import Any

from tests.badinput.conftest import OK, Web, snapshot
from tests.helpers import Peer, error_text, push_line
from werk.job import QUEUE_RULE

NUL = "a\x00b"
BAD_QUEUES = [NUL, "é", "q/1", "\x7f"]
CALLBACK = {"jid": "callback-1", "jobtype": "Done", "args": []}


def test_queue_commands_refuse_or_ignore_a_name_no_queue_can_have(
    seeded: tuple[Peer, dict[str, Any]],
) -> None:
    peer, before = seeded
    for name in BAD_QUEUES:
        for sub in ("PAUSE", "RESUME", "REMOVE"):
            text = error_text(peer.call(f"QUEUE {sub} q1 {name}"))
            assert text == f'ERR cannot get "{name}" queue: {QUEUE_RULE}', (sub, text)
        latency = json.loads(peer.call(f"QUEUE LATENCY {name} q1"))  # type: ignore[arg-type]
        assert latency[name] == 0 and latency["q1"] >= 0, latency
    assert snapshot(peer) == before
    assert peer.call(f"FETCH {NUL} é") is None  # waits its 2 s, as for an empty queue
    got = peer.call(f"FETCH {NUL} q1")
    assert isinstance(got, bytes) and json.loads(got)["jid"] == "seed-waiting"


def test_a_jid_holding_nul_names_no_job(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    for cmd in ("discard", "kill", "requeue"):
        for target in ("retries", "scheduled", "dead"):
            flt = {"jids": [NUL, "seed-" + NUL]}
            line = {"cmd": cmd, "target": target, "filter": flt}
            assert peer.call("MUTATE " + json.dumps(line)) == OK, (cmd, target)
    assert snapshot(peer) == before


def test_batches_refuse_what_no_batch_or_push_would_take(peer: Peer) -> None:
    for sub in ("OPEN", "COMMIT", "STATUS"):
        assert error_text(peer.call(f"BATCH {sub} {NUL}")) == f"ERR no such batch {NUL}"
    text = error_text(peer.call(push_line("jid-in-nul-batch", custom={"bid": NUL})))
    assert text == f"ERR no such batch {NUL}"
    for spec, expected in (
        ({"parent_bid": NUL}, f"ERR no such batch {NUL}"),
        ({"parent_bid": 5}, "ERR invalid batch: parent_bid and description must be strings"),
        ({"description": {"a": 1}}, "ERR invalid batch: parent_bid and description"),
        ({"success": {**CALLBACK, "queue": "bad name"}}, 'ERR cannot get "bad name" queue'),
        ({"complete": {**CALLBACK, "queue": NUL}}, f'ERR cannot get "{NUL}" queue'),
    ):
        doc = {"success": CALLBACK, **spec}
        assert error_text(peer.call("BATCH NEW " + json.dumps(doc))).startswith(expected), spec
    late = {"success": {**CALLBACK, "at": "9999-12-31T23:59:59-23:59"}}  # dropped when fired
    assert isinstance(peer.call("BATCH NEW " + json.dumps(late)), bytes)


async def test_web_queue_actions_on_a_name_no_queue_can_have(web: Web) -> None:
    await web.push("jid-waiting-1", queue="q1")
    for path in ("/queues/%00", "/queues/%C3%A9", "/queues/a%20b"):
        for action in ("pause", "resume", "delete", "delete_jobs"):
            response = await web.post(path, {"action": action, "jid": "jid-waiting-1"})
            assert response.status_code == 404, (path, action, response.text[:200])
    assert (await web.stats())["queues"] == {"q1": 1}
