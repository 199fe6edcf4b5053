"""The push-path benchmark drivers work against a real server (tiny N; no timings asserted)."""

from __future__ import annotations

import os

from werk.benchmarks import raw
from werk.benchmarks.harness import BenchServer
from werk.benchmarks.pushpath import push_clients, push_path


def test_raw_drivers_push_fetch_and_ack_every_job() -> None:
    with BenchServer(durability="os") as server:
        assert raw.push_sequential(server.port, raw.push_lines(20)) > 0
        assert raw.push_concurrent(server.port, raw.push_lines(50), 16) > 0
        assert raw.fetch_ack(server.port, 70) > 0
        assert len(raw.push_to_fetch(server.port, 5, settle=0.0)) == 5
        conn = raw.RawConnection(server.port)
        # Every job pushed was fetched and acknowledged: nothing is left queued or reserved.
        assert b'"bench":0' in conn.call(b"INFO\r\n") and b'"working":0' in conn.call(b"INFO\r\n")
        conn.close()


def test_push_path_reports_both_durability_modes_against_the_fsync_rate() -> None:
    result = push_path("sqlite", 30)
    assert result["fsync_per_s"] > 0
    for mode in ("fsync", "os"):
        assert result[f"{mode}.push_1_per_s"] > 0 and result[f"{mode}.push_16_per_s"] > 0
        assert result[f"{mode}.push_1_vs_fsync"] > 0
        assert 0 < result[f"{mode}.push_to_fetch_p50_ms"] <= result[f"{mode}.push_to_fetch_p99_ms"]
        assert result[f"{mode}.fetch_ack_cpu_us"] >= 0
        # The embedded store's group commit and the bare SQLite commit on the same disk.
        assert 1 <= result[f"{mode}.push_16_per_commit"] <= 16
        assert result[f"{mode}.push_16_commit_ms"] > 0
        assert result[f"{mode}.sqlite_commit_per_s"] > 0
        assert result[f"{mode}.push_1_vs_sqlite_commit"] > 0


def test_push_clients_compares_werk_faktory_pyfaktory_and_raw() -> None:
    result = push_clients("sqlite", 20, blocks=2)
    assert set(result) == {"werk_client_per_s", "faktory_per_s", "pyfaktory_per_s", "raw_per_s"}


def test_cpu_seconds_grow_with_work() -> None:
    before = raw.cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert raw.cpu_seconds(os.getpid()) > before
