"""Statsd / DogStatsD push over UDP, configured like Faktory Enterprise's ``[statsd]`` table.

``location = "host:port"`` (or ``DD_DOGSTATSD_URL``) turns it on; ``namespace`` (default
``werk.``) prefixes every name; ``tags = ["env:prod"]`` are added to every metric in
DogStatsD syntax; ``interval`` (default 30 s) is the push period. Each round sends, as
Faktory Enterprise names them: ``processed`` and ``failures`` (counters: the increase since
the last round), gauges ``enqueued``, ``busy``, ``scheduled``, ``retries``, ``dead``,
``connections``, and per queue ``enqueued.<queue>`` plus ``queue.size`` and
``queue.latency`` (ms) tagged ``queue:<name>``. Settings are read each round (SIGHUP).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werk.server.config import statsd_address

if TYPE_CHECKING:
    from werk.server.state import ServerState

log = logging.getLogger("werk.statsd")

DEFAULT_NAMESPACE = "werk."
DEFAULT_INTERVAL = 30.0
MAX_DATAGRAM = 1432
"""Metrics are packed into datagrams up to this size (fits a 1500-byte MTU)."""


def format_metric(name: str, value: float, kind: str, tags: Iterable[str] = ()) -> str:
    """Return one DogStatsD line, e.g. ``werk.processed:3|c|#env:prod``."""
    number = int(value) if float(value).is_integer() else round(value, 3)
    line = f"{name}:{number}|{kind}"
    tags = list(tags)
    return f"{line}|#{','.join(tags)}" if tags else line


def pack(lines: Iterable[str], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Join lines with newlines into datagrams of at most ``limit`` bytes."""
    datagrams: list[bytes] = []
    current = b""
    for line in lines:
        data = line.encode()
        if current and len(current) + 1 + len(data) > limit:
            datagrams.append(current)
            current = b""
        current = current + b"\n" + data if current else data
    if current:
        datagrams.append(current)
    return datagrams


class StatsdReporter:
    """Pushes the server's metrics to a statsd agent every ``interval`` seconds."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.sent = 0
        self.errors = 0
        self._last: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    def _settings(self) -> dict[str, Any]:
        table = self.server.config.settings.get("statsd")
        return table if isinstance(table, dict) else {}

    def start(self) -> None:
        """Start the push loop (it idles while no ``location`` is configured)."""
        self._task = asyncio.create_task(self._run(), name="werk-statsd")

    async def stop(self) -> None:
        """Stop pushing and close the socket."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _run(self) -> None:
        while True:
            table = self._settings()
            interval = float(table.get("interval", DEFAULT_INTERVAL))
            if table.get("location"):
                try:
                    await self.push(table)
                except Exception:  # a metrics hiccup must never stop the loop
                    self.errors += 1
                    log.exception("statsd push failed")
            await asyncio.sleep(max(interval, 0.05))

    async def push(self, table: dict[str, Any]) -> None:
        """Send one round of metrics to ``table["location"]``."""
        address = statsd_address(str(table["location"]))
        lines = await self.lines(
            str(table.get("namespace", DEFAULT_NAMESPACE)),
            [str(tag) for tag in table.get("tags", [])],
        )
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        for datagram in pack(lines):
            try:
                self._sock.sendto(datagram, address)
                self.sent += 1
            except OSError as exc:  # no agent listening: UDP says so, we carry on
                self.errors += 1
                log.debug("statsd send failed: %s", exc)

    async def lines(self, ns: str, tags: list[str]) -> list[str]:
        """Return this round's metric lines."""
        info = await self.server.info()
        faktory = info["faktory"]
        processed, failures = faktory["total_processed"], faktory["total_failures"]
        last = self._last or (processed, failures)
        self._last = (processed, failures)
        sets = faktory["sets"]
        out = [
            format_metric(f"{ns}processed", processed - last[0], "c", tags),
            format_metric(f"{ns}failures", failures - last[1], "c", tags),
            format_metric(f"{ns}enqueued", faktory["total_enqueued"], "g", tags),
            format_metric(f"{ns}busy", sets["working"], "g", tags),
            format_metric(f"{ns}connections", info["server"]["connections"], "g", tags),
        ]
        out += [
            format_metric(f"{ns}{name}", sets[name], "g", tags)
            for name in ("scheduled", "retries", "dead")
        ]
        latencies = await self.server.manager.latency(list(faktory["queues"]))
        for queue, size in faktory["queues"].items():
            queue_tags = [*tags, f"queue:{queue}"]
            latency_ms = latencies.get(queue, 0.0) * 1000
            out.append(format_metric(f"{ns}enqueued.{queue}", size, "g", tags))
            out.append(format_metric(f"{ns}queue.size", size, "g", queue_tags))
            out.append(format_metric(f"{ns}queue.latency", latency_ms, "g", queue_tags))
        return out
