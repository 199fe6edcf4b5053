"""``python manage.py werk_worker``: run this project's Django tasks from Werk."""

from __future__ import annotations

import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from werk.cli.server import LEVELS, log_handler
from werk.contrib.django.worker import django_worker


def setup_logging(level: str | None, fmt: str) -> None:
    """Show the worker's log lines as ``werk worker`` does (Faktory's text format, or JSON),
    unless the project's ``LOGGING`` already sends them somewhere: a handler on the
    ``werk`` logger or on the root logger. An explicit ``-l`` sets the ``werk`` logger's
    level either way."""
    werk = logging.getLogger("werk")
    if not werk.handlers and not logging.getLogger().handlers:
        werk.addHandler(log_handler(fmt))
        werk.setLevel(LEVELS[level or "info"])
    elif level:
        werk.setLevel(LEVELS[level])


class Command(BaseCommand):
    """Fetch Django tasks from Werk and run them with this project's settings."""

    help = (
        "Run a Werk worker for this project's Django tasks (django.tasks with the Werk"
        " backend). SIGTERM or Ctrl-C stops it gracefully."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """The worker's flags."""
        parser.add_argument("--backend", default="default", help="the TASKS alias to serve")
        parser.add_argument(
            "-q",
            "--queue",
            action="append",
            default=[],
            help="queue to fetch from, repeatable (default: the backend's QUEUES)",
        )
        parser.add_argument(
            "-c", "--concurrency", type=int, default=10, help="tasks running at once"
        )
        parser.add_argument("--url", help="the Werk server (default: the backend's URL)")
        parser.add_argument(
            "-l",
            "--log-level",
            choices=list(LEVELS),
            help="the werk logger's level (default info: one line per task; the project's"
            " LOGGING is respected when it configures the werk or the root logger)",
        )
        parser.add_argument(
            "--log-format", choices=("text", "json"), default="text", help="log line format"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run until stopped."""
        setup_logging(options["log_level"], options["log_format"])
        worker = django_worker(
            backend=options["backend"],
            queues=options["queue"],
            concurrency=options["concurrency"],
            url=options["url"],
        )
        self.stdout.write(f"werk worker {worker.wid}: queues {', '.join(worker.queues.names)}")
        worker.run()
