"""``/metrics``: the server's state in the Prometheus text exposition format (version 0.0.4).

Written by hand (no client library): queue sizes, latencies and pause state, processed and
failed counters, busy jobs, set sizes, connections, worker processes, per-verb command
counts and duration histograms, the embedded store's commits (and commit durations when
the store measures them) and periodic backups. Reads go through the INFO document and the
query API, like every other page; the guard asks for the web password here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from werk.server.server import Server
    from werk.server.timings import Histogram
    from werk.webui.ui import Ui

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    """Escape a label value (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


class Exposition:
    """Collects metric families and renders them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        """Add a counter or gauge family (a counter's ``name`` ends in ``_total``)."""
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]

    def histograms(
        self, name: str, help_text: str, series: Iterable[tuple[dict[str, str], Histogram]]
    ) -> None:
        """Add a histogram family: buckets, ``_sum`` and ``_count`` per label set."""
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for labels, histogram in series:
            for bound, count in histogram.cumulative():
                self.lines.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {count}")
            self.lines.append(f"{name}_sum{_labels(labels)} {_number(histogram.sum)}")
            self.lines.append(f"{name}_count{_labels(labels)} {histogram.count}")

    def render(self) -> str:
        """Return the exposition text."""
        return "\n".join(self.lines) + "\n"


async def render_metrics(server: Server) -> str:
    """Return every metric of ``server`` in the Prometheus text format."""
    from werk.manager.queries import Queries

    info = await server.info()
    queues = await Queries(server.manager, server.processes).queues()
    out = Exposition()
    _server_families(out, server, info)
    _job_families(out, info, queues)
    out.histograms(
        "werk_command_duration_seconds",
        "Time to handle a protocol command, by verb.",
        (({"verb": verb}, hist) for verb, hist in sorted(server.timings.verbs.items())),
    )
    _store_families(out, server)
    return out.render()


def _server_families(out: Exposition, server: Server, info: dict[str, Any]) -> None:
    data = info["server"]
    labels = {"version": data["werk_version"], "faktory_version": data["faktory_version"]}
    out.family("werk_info", "gauge", "The server's version.", [(labels, 1)])
    out.family(
        "werk_uptime_seconds", "gauge", "Seconds since the server started.", [({}, data["uptime"])]
    )
    out.family(
        "werk_connections", "gauge", "Identified client connections.", [({}, data["connections"])]
    )
    workers = info["faktory"]["tasks"]["Workers"]["size"]
    out.family("werk_processes", "gauge", "Worker processes with a heartbeat.", [({}, workers)])
    out.family(
        "werk_commands_total",
        "counter",
        "Protocol commands handled, by verb.",
        (({"verb": verb}, hist.count) for verb, hist in sorted(server.timings.verbs.items())),
    )


def _job_families(out: Exposition, info: dict[str, Any], queues: list[Any]) -> None:
    faktory = info["faktory"]
    out.family(
        "werk_jobs_processed_total",
        "counter",
        "Jobs acknowledged or failed.",
        [({}, faktory["total_processed"])],
    )
    out.family(
        "werk_jobs_failed_total", "counter", "Jobs failed.", [({}, faktory["total_failures"])]
    )
    out.family(
        "werk_jobs_busy",
        "gauge",
        "Jobs reserved by a worker (working).",
        [({}, faktory["sets"]["working"])],
    )
    out.family(
        "werk_jobs_enqueued",
        "gauge",
        "Jobs waiting in all queues.",
        [({}, faktory["total_enqueued"])],
    )
    sets = [({"set": name}, faktory["sets"][name]) for name in ("scheduled", "retries", "dead")]
    out.family("werk_set_size", "gauge", "Jobs in the scheduled, retries and dead sets.", sets)
    out.family(
        "werk_queue_size",
        "gauge",
        "Jobs waiting in a queue.",
        [({"queue": q.name}, q.size) for q in queues],
    )
    out.family(
        "werk_queue_latency_seconds",
        "gauge",
        "Age of the oldest job in a queue.",
        [({"queue": q.name}, q.latency) for q in queues],
    )
    out.family(
        "werk_queue_paused",
        "gauge",
        "1 if the queue is paused.",
        [({"queue": q.name}, int(q.paused)) for q in queues],
    )


def _store_families(out: Exposition, server: Server) -> None:
    commits = getattr(server.store, "commits", None)
    if isinstance(commits, int):
        out.family(
            "werk_store_commits_total",
            "counter",
            "Transactions committed by the embedded store's writer.",
            [({}, commits)],
        )
    # The SQLite writer's running totals; SqliteStore exposes only ``commits`` publicly.
    writer = getattr(server.store, "_writer", None)
    seconds = getattr(writer, "commit_seconds", None)
    if isinstance(commits, int) and isinstance(seconds, float):
        out.lines += [
            "# HELP werk_store_commit_duration_seconds Time of group commits (transaction+fsync).",
            "# TYPE werk_store_commit_duration_seconds summary",
            f"werk_store_commit_duration_seconds_sum {_number(seconds)}",
            f"werk_store_commit_duration_seconds_count {commits}",
        ]
    for service in server.services:
        if type(service).__name__ == "PeriodicBackups" and service.supported:
            last = service.last_success or 0
            out.family(
                "werk_backups_total", "counter", "Periodic backups taken.", [({}, service.taken)]
            )
            out.family(
                "werk_backup_failures_total",
                "counter",
                "Periodic backups that failed.",
                [({}, service.failures)],
            )
            out.family(
                "werk_backup_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last good periodic backup (0: none).",
                [({}, last)],
            )


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the ``/metrics`` route."""

    async def metrics(request: Request) -> Response:
        return Response(await render_metrics(ui.server), media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics)]
