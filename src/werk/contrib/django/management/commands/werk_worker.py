"""``python manage.py werk_worker``: run this project's Django tasks from Werk."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from werk.contrib.django.worker import django_worker


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

    def handle(self, *args: Any, **options: Any) -> None:
        """Run until stopped."""
        worker = django_worker(
            backend=options["backend"],
            queues=options["queue"],
            concurrency=options["concurrency"],
            url=options["url"],
        )
        self.stdout.write(f"werk worker {worker.wid}: queues {', '.join(worker.queues.names)}")
        worker.run()
