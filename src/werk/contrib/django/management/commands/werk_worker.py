"""``python manage.py werk_worker``: run this project's Django tasks from Werk."""

from __future__ import annotations

import logging
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from werk.cli.argtypes import positive_int, queue_spec, server_url
from werk.cli.server import LEVELS, log_handler
from werk.client.joblog import JobContextFilter, log_prints
from werk.contrib.django.worker import django_worker
from werk.errors import WerkError

DJANGO_TASKS_LOGGER = "django.tasks"
"""Django's own task lines (``Task id=... state=RUNNING``, a failure with its traceback):
the worker's ``werk.worker`` lines say the same with the jid and jobtype."""


def _not_django_tasks(record: logging.LogRecord) -> bool:
    return not record.name.startswith(DJANGO_TASKS_LOGGER)


def setup_logging(level: str | None, fmt: str) -> None:
    """Show the worker's log lines as ``werk worker`` does (Faktory's text format, or JSON),
    unless the project's logging already sends them somewhere: a handler on the ``werk``
    logger or on the root logger. An explicit ``-l`` sets the ``werk`` logger's level
    either way.

    Which logger owns a task's lines: ``werk.worker`` (one line per task, a failure once
    with its traceback). With Django's default logging (no ``LOGGING`` setting) the worker
    owns stderr: its handler goes on the root logger so every logger's lines (Django's
    too) come out in one format, with the jid and jobtype of the task they came from,
    Django's ``console`` handler (plain text, ``DEBUG`` only) is replaced by it, Python
    warnings are logged, ``django.tasks``' lines, which repeat the worker's, are left out
    of stderr (they still reach ``mail_admins``), and in JSON prints are logged too
    (:func:`~werk.client.joblog.log_prints`). A project's own ``LOGGING`` is kept as it
    is: only the ``werk`` logger gets the handler.
    """
    werk = logging.getLogger("werk")
    root = logging.getLogger()
    if werk.handlers or root.handlers:
        if level:
            werk.setLevel(LEVELS[level])
        return
    handler = log_handler(fmt)
    handler.addFilter(JobContextFilter())
    werk.setLevel(LEVELS[level or "info"])
    if settings.LOGGING:
        werk.addHandler(handler)
        return
    handler.addFilter(_not_django_tasks)
    root.addHandler(handler)
    if fmt == "json":
        log_prints()
    django = logging.getLogger("django")
    for found in list(django.handlers):
        if type(found) is logging.StreamHandler:  # Django's "console" (DEBUG only)
            django.removeHandler(found)
    logging.captureWarnings(True)


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
            type=queue_spec,
            help="queue to fetch from, NAME or NAME,WEIGHT, repeatable (default: the"
            " backend's QUEUES)",
        )
        parser.add_argument(
            "-c", "--concurrency", type=positive_int, default=10, help="tasks running at once"
        )
        parser.add_argument(
            "--url", type=server_url, help="the Werk server (default: the backend's URL)"
        )
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
        """Run until stopped; exit 1 on an error the worker cannot retry, as ``werk worker``
        does.

        Raises:
            SystemExit: status 1 after a wrong password, a port that is not a work port or
                a URL the client cannot read (its reason logged, without a traceback).
        """
        setup_logging(options["log_level"], options["log_format"])
        worker = django_worker(
            backend=options["backend"],
            queues=options["queue"],
            concurrency=options["concurrency"],
            url=options["url"],
        )
        try:
            worker.run()  # logs "worker <wid> starting: server ..., queues ..." first
        except (WerkError, OSError) as exc:
            logging.getLogger("werk.worker").error("worker stopped: %s", exc)
            raise SystemExit(1) from None
