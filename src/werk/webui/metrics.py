"""``/metrics``: the server's state for Prometheus, written by ``prometheus_client``.

A custom collector turns one snapshot (the INFO document, the query API's queues, the
per-verb command timings, the embedded store's commits and the periodic backups) into
metric families; the reference client library writes them, with its types and escaping,
in the Prometheus text format (0.0.4), or in OpenMetrics when the scraper's ``Accept``
header asks for ``application/openmetrics-text``. Reads go through the INFO document and
the query API, like every other page; the guard asks for the web password here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.queries import QueueRow

if TYPE_CHECKING:
    from werk.server.server import Server
    from werk.webui.ui import Ui


def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    """A gauge family with one unlabelled sample."""
    return GaugeMetricFamily(name, help_text, value=value)


def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    """A counter family with one unlabelled sample (``name`` without ``_total``)."""
    return CounterMetricFamily(name, help_text, value=value)


@dataclass(frozen=True)
class Snapshot(Collector):
    """The server's metrics at one moment, as a ``prometheus_client`` collector.

    ``collect`` is synchronous (the library's contract) and the INFO document and the
    query API are async, so the route reads them first and the collector only converts.
    """

    server: Server
    info: dict[str, Any]
    queues: list[QueueRow]

    @classmethod
    async def of(cls, server: Server, queues: list[QueueRow]) -> Snapshot:
        """Read the INFO document now; ``queues`` come from the query API."""
        return cls(server, await server.info(), queues)

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (the library calls this while rendering)."""
        yield from self._server_families()
        yield from self._job_families()
        yield from self._queue_families()
        yield from self._store_families()

    def _server_families(self) -> Iterator[Metric]:
        data = self.info["server"]
        version = {"version": data["werk_version"], "faktory_version": data["faktory_version"]}
        yield InfoMetricFamily("werk", "The server's version.", value=version)
        yield gauge("werk_uptime_seconds", "Seconds since the server started.", data["uptime"])
        yield gauge("werk_connections", "Identified client connections.", data["connections"])
        workers = self.info["faktory"]["tasks"]["Workers"]["size"]
        yield gauge("werk_processes", "Worker processes with a heartbeat.", workers)
        verbs = sorted(self.server.timings.verbs.items())
        commands = CounterMetricFamily(
            "werk_commands", "Protocol commands handled, by verb.", labels=["verb"]
        )
        durations = HistogramMetricFamily(
            "werk_command_duration_seconds",
            "Time to handle a protocol command, by verb.",
            labels=["verb"],
        )
        for verb, histogram in verbs:
            commands.add_metric([verb], histogram.count)
            durations.add_metric([verb], histogram.cumulative(), histogram.sum)
        yield commands
        yield durations

    def _job_families(self) -> Iterator[Metric]:
        faktory = self.info["faktory"]
        yield counter(
            "werk_jobs_processed", "Jobs acknowledged or failed.", faktory["total_processed"]
        )
        yield counter("werk_jobs_failed", "Jobs failed.", faktory["total_failures"])
        yield gauge(
            "werk_jobs_busy", "Jobs reserved by a worker (working).", faktory["sets"]["working"]
        )
        yield gauge("werk_jobs_enqueued", "Jobs waiting in all queues.", faktory["total_enqueued"])
        sets = GaugeMetricFamily(
            "werk_set_size", "Jobs in the scheduled, retries and dead sets.", labels=["set"]
        )
        for name in ("scheduled", "retries", "dead"):
            sets.add_metric([name], faktory["sets"][name])
        yield sets
        stored = CounterMetricFamily(
            "werk_results_stored",
            "Job outcomes stored for jobs that asked for their result, by state.",
            labels=["state"],
        )
        for state, count in sorted(faktory.get("results", {}).items()):
            stored.add_metric([state], count)
        yield stored

    def _queue_families(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("werk_queue_size", "Jobs waiting in a queue.", labels=["queue"])
        latency = GaugeMetricFamily(
            "werk_queue_latency_seconds", "Age of the oldest job in a queue.", labels=["queue"]
        )
        paused = GaugeMetricFamily(
            "werk_queue_paused", "1 if the queue is paused.", labels=["queue"]
        )
        for queue in self.queues:
            size.add_metric([queue.name], queue.size)
            latency.add_metric([queue.name], queue.latency)
            paused.add_metric([queue.name], int(queue.paused))
        yield from (size, latency, paused)

    def _store_families(self) -> Iterator[Metric]:
        store = self.server.store
        commits = getattr(store, "commits", None)
        if isinstance(commits, int):
            yield counter(
                "werk_store_commits",
                "Transactions committed by the embedded store's writer.",
                commits,
            )
            # The SQLite writer's running total; SqliteStore exposes only ``commits`` publicly.
            seconds = getattr(getattr(store, "_writer", None), "commit_seconds", None)
            if isinstance(seconds, float):
                yield SummaryMetricFamily(
                    "werk_store_commit_duration_seconds",
                    "Time of group commits (transaction+fsync).",
                    count_value=commits,
                    sum_value=seconds,
                )
        for service in self.server.services:
            if type(service).__name__ == "PeriodicBackups" and service.supported:
                yield counter("werk_backups", "Periodic backups taken.", service.taken)
                yield counter(
                    "werk_backup_failures", "Periodic backups that failed.", service.failures
                )
                yield gauge(
                    "werk_backup_last_success_timestamp_seconds",
                    "Unix time of the last good periodic backup (0: none).",
                    service.last_success or 0,
                )


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the ``/metrics`` route."""

    async def metrics(request: Request) -> Response:
        snapshot = await Snapshot.of(ui.server, await ui.queries.queues())
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(snapshot), headers={"content-type": content_type})

    return [Route("/metrics", metrics)]
