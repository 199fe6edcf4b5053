"""Two ``werk server`` processes on one Redis under a drain whose FETCHes and ACKs each
server gathers into shared round trips (werk.storage.redis.batch): every job is handed out
and acknowledged exactly once, and Redis itself shows that the round trips were shared."""

from __future__ import annotations

import collections
import json
import shutil
import threading
from pathlib import Path

import redis

from tests.cluster.test_multi_server import OK, connect, start
from tests.conftest import require
from tests.storage.test_redis import RedisServer

JOBS = 3000
CONNECTIONS = 12
"""Worker connections per server, each with one FETCH or ACK in flight at a time."""


def test_two_servers_batching_fetch_and_ack_deliver_each_job_once(tmp_path: Path) -> None:
    # Given: a Redis of our own (so that its command counts are ours alone), two servers
    # on it, and 3,000 jobs pushed half through each.
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    store = RedisServer(tmp_path).start()
    url = f"redis://127.0.0.1:{store.port}/0"
    servers = [start(tmp_path, "a", url), start(tmp_path, "b", url)]
    client = redis.Redis.from_url(url)
    try:
        jids = [f"batched-{i:06d}" for i in range(JOBS)]
        for index, server in enumerate(servers):
            batch = [{"jid": jid, "jobtype": "T", "args": []} for jid in jids[index::2]]
            assert connect(server).call("PUSHB " + json.dumps(batch)) == b"{}"
        before = client.info("commandstats")

        # When: 12 worker connections on each server FETCH and ACK at once until empty.
        fetched: collections.Counter[str] = collections.Counter()
        acked: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def work(server_index: int, n: int) -> None:
            conn = connect(servers[server_index], wid=f"w-{server_index}-{n}")
            while (job := conn.call("FETCH default")) is not None:
                assert isinstance(job, bytes)
                jid = json.loads(job)["jid"]
                with lock:
                    fetched[jid] += 1
                if conn.call("ACK " + json.dumps({"jid": jid})) == OK:
                    with lock:
                        acked[jid] += 1

        threads = [
            threading.Thread(target=work, args=(s, n))
            for s in range(len(servers))
            for n in range(CONNECTIONS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

        # Then: each job was handed out once and acknowledged once, on one server or the
        # other; none is still reserved and the counters agree.
        assert set(fetched) == set(jids) and max(fetched.values()) == 1
        assert set(acked) == set(jids) and max(acked.values()) == 1
        info = json.loads(connect(servers[0]).call("INFO"))  # type: ignore[arg-type]
        assert info["faktory"]["total_processed"] == JOBS
        assert info["faktory"]["sets"]["working"] == 0
        # And the 6,000 FETCHes and ACKs (plus the closing empty FETCHes) went to Redis in
        # far fewer script calls: the servers batched them.
        after = client.info("commandstats")
        calls = after["cmdstat_evalsha"]["calls"] - before["cmdstat_evalsha"]["calls"]
        assert calls < 2 * JOBS / 2, f"{calls} script calls for {2 * JOBS} FETCHes and ACKs"
    finally:
        for server in servers:
            server.kill()
        client.close()
        store.kill()
