"""``/metrics`` in the Prometheus text format, and the statsd push over UDP."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Peer, ServerProcess, push_line
from tests.ops.conftest import write_conf
from werk.protocol.resp import Simple


def scrape(server: ServerProcess, password: str | None = None) -> dict[str, Any]:
    """Return ``/metrics`` parsed: family name -> family."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.web_port}/metrics")
    if password:
        token = base64.b64encode(f"ops:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """Return the value of the sample ``sample`` (default: the family name) with ``labels``."""
    for s in families[name].samples:
        if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError((name, sample, labels))


def test_metrics_families_and_values(werk_server_factory: Callable[..., ServerProcess]) -> None:
    # Given a server with two queued jobs, one processed job and one failed job
    server = werk_server_factory(web=True)
    peer = Peer(server.host, server.port)
    assert peer.hello(wid="metrics-worker") == Simple("OK")
    for n in range(4):
        assert peer.call(push_line(f"metrics-{n:04d}", queue="mq", retry=0)) == Simple("OK")
    for verb in ("ACK", "FAIL"):
        job = json.loads(peer.call("FETCH mq"))  # type: ignore[arg-type]
        extra = ',"errtype":"E","message":"m"' if verb == "FAIL" else ""
        assert peer.call(f'{verb} {{"jid":"{job["jid"]}"{extra}}}') == Simple("OK")
    # When /metrics is scraped
    families = scrape(server)
    # Then the families hold the expected values
    assert families["werk_queue_size"].type == "gauge"
    assert value(families, "werk_queue_size", queue="mq") == 2
    assert value(families, "werk_queue_latency_seconds", queue="mq") >= 0
    assert value(families, "werk_queue_paused", queue="mq") == 0
    assert families["werk_jobs_processed"].type == "counter"
    assert value(families, "werk_jobs_processed", "werk_jobs_processed_total") == 2
    assert value(families, "werk_jobs_failed", "werk_jobs_failed_total") == 1
    assert value(families, "werk_jobs_busy") == 0
    assert value(families, "werk_set_size", set="dead") == 0
    assert value(families, "werk_connections") == 1
    assert value(families, "werk_processes") == 1
    assert value(families, "werk_commands", "werk_commands_total", verb="PUSH") == 4
    assert families["werk_command_duration_seconds"].type == "histogram"
    name = "werk_command_duration_seconds"
    assert value(families, name, f"{name}_count", verb="FETCH") == 2
    assert value(families, name, f"{name}_bucket", verb="PUSH", le="+Inf") == 4
    assert value(families, name, f"{name}_sum", verb="PUSH") > 0
    assert (
        value(families, "werk_info", version=families["werk_info"].samples[0].labels["version"])
        == 1
    )


def test_store_commit_metrics_on_sqlite(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", web=True).start()
    try:
        peer = Peer(server.host, server.port)
        assert peer.hello() == Simple("OK")
        assert peer.call(push_line("commit-metrics")) == Simple("OK")
        families = scrape(server)
        assert value(families, "werk_store_commits", "werk_store_commits_total") >= 1
        name = "werk_store_commit_duration_seconds"
        assert families[name].type == "summary"
        assert value(families, name, f"{name}_sum") > 0
    finally:
        server.kill()


def test_metrics_need_the_web_password(werk_server_factory: Callable[..., ServerProcess]) -> None:
    server = werk_server_factory(password="metricspw", web=True)
    with pytest.raises(urllib.error.HTTPError) as info:
        scrape(server)
    assert info.value.code == 401
    assert "werk_connections" in scrape(server, password="metricspw")


def test_statsd_packets(
    werk_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    # Given an agent listening on a UDP socket and a server configured to push to it
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent.bind(("127.0.0.1", 0))
    agent.settimeout(10)
    port = agent.getsockname()[1]
    write_conf(
        config_dir,
        "statsd.toml",
        f'[statsd]\nlocation = "127.0.0.1:{port}"\ntags = ["env:test"]\ninterval = 0.2\n',
    )
    server = werk_server_factory(extra_args=["-c", str(config_dir)])
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    assert peer.call(push_line("statsd-job", queue="sq")) == Simple("OK")
    # When the server pushes a few rounds
    lines: set[str] = set()
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and "werk.queue.size:1|g|#env:test,queue:sq" not in lines:
            lines.update(agent.recv(65536).decode().split("\n"))
    finally:
        agent.close()
    # Then the metrics arrive in DogStatsD syntax with Faktory Enterprise's names
    assert "werk.queue.size:1|g|#env:test,queue:sq" in lines
    assert "werk.enqueued.sq:1|g|#env:test" in lines
    assert any(
        line.startswith("werk.processed:") and line.endswith("|c|#env:test") for line in lines
    )
    assert any(line.startswith("werk.queue.latency:") for line in lines)
    assert "werk.connections:1|g|#env:test" in lines
