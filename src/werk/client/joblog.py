"""Which job a log line came from, and a job's prints as log lines.

:class:`JobContextFilter`, on a logging handler, gives every record emitted while a job
runs (in the job's thread, or its task for an ``async def`` job) the job's ``jid`` and
``jobtype`` attributes, unless the record carries its own (the worker's job lines pass
them as ``extra``): a JSON line then has ``jid`` and ``jobtype`` fields, and Faktory's
text line starts with ``[jobtype jid]``. ``werk worker`` puts it on its handler; a program
with its own logging configuration can add it to its handlers (a ``filters`` entry with
``"()": "werk.client.joblog.JobContextFilter"`` in ``dictConfig``) and put
``%(job_prefix)s`` in their formats.

:class:`LoggedStream` replaces ``sys.stdout`` and ``sys.stderr`` under ``werk worker
--log-format json``: each line written becomes a log record (logger ``stdout``, level info;
logger ``stderr``, level warning), so a job's ``print()`` comes out as a JSON line with its
job's ``jid`` and ``jobtype`` rather than as raw text in the JSON stream. Output written to
the file descriptors directly (a C extension, a child process) is not seen.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any, TextIO

from werk.client.runner import current_job

JOB_PREFIX = "job_prefix"
"""The record attribute :class:`JobContextFilter` sets to ``"[jobtype jid] "`` on a record
it gave a job's context (``""`` on others): the text format puts it before the message
(:class:`werk.cli.server.TextFormatter`)."""


class JobContextFilter(logging.Filter):
    """Add the running job's ``jid`` and ``jobtype`` to records that do not carry them;
    never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Give ``record`` the current job's context, if a job runs here; return True."""
        fields = record.__dict__
        if JOB_PREFIX in fields:
            return True  # seen by another handler's filter already
        job = current_job()
        if job is None or "jid" in fields:
            fields[JOB_PREFIX] = ""
            return True
        fields["jid"] = job.get("jid")
        fields["jobtype"] = job.get("jobtype")
        fields[JOB_PREFIX] = f"[{fields['jobtype']} {fields['jid']}] "
        return True


class LoggedStream(io.TextIOBase):
    """A text stream whose lines become log records of ``logger`` at ``level``.

    Each thread's text is kept until it ends a line (a ``print()`` writes its text and its
    newline separately, and jobs in several threads print at once); ``flush()`` logs a
    thread's unfinished line as it is. A write made while such a record is being handled
    (logging reporting its own error) goes to ``fallback`` instead of looping.

    Args:
        logger: where the lines go.
        level: their level.
        fallback: the stream replaced, for the attributes other code asks a stream for
            (``encoding``, ``buffer``, ``fileno()``, ``isatty()``) and for the writes
            logging makes while handling such a record.
    """

    def __init__(self, logger: logging.Logger, level: int, fallback: TextIO) -> None:
        super().__init__()
        self.logger = logger
        self.level = level
        self.fallback = fallback
        self._local = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The replaced stream's encoding."""
        return self.fallback.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        """The replaced stream's error handling."""
        return self.fallback.errors

    @property
    def buffer(self) -> Any:
        """The replaced stream's binary buffer: bytes written there are not logged."""
        return self.fallback.buffer

    def fileno(self) -> int:
        """The replaced stream's file descriptor."""
        return self.fallback.fileno()

    def isatty(self) -> bool:
        """Whether the replaced stream is a terminal."""
        return self.fallback.isatty()

    def writable(self) -> bool:
        """Always: lines are logged."""
        return True

    def write(self, text: str) -> int:
        """Log each line ``text`` completes; keep the rest for the next write."""
        local = self._local
        if getattr(local, "logging", False):
            return self.fallback.write(text)
        pending: str = getattr(local, "pending", "") + text
        *lines, local.pending = pending.split("\n")
        for line in lines:
            self._log(line)
        return len(text)

    def flush(self) -> None:
        """Log this thread's unfinished line, if any."""
        pending = getattr(self._local, "pending", "")
        if pending:
            self._local.pending = ""
            self._log(pending)

    def _log(self, line: str) -> None:
        self._local.logging = True
        try:
            self.logger.log(self.level, "%s", line)
        finally:
            self._local.logging = False


def log_prints() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by :class:`LoggedStream` s (loggers
    ``stdout`` at info and ``stderr`` at warning, shown at any log level, as the text
    format shows prints) and log Python's warnings (logger ``py.warnings``)."""
    streams: dict[str, Any] = {"stdout": logging.INFO, "stderr": logging.WARNING}
    for name, level in streams.items():
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        current = getattr(sys, name)
        if not isinstance(current, LoggedStream):
            setattr(sys, name, LoggedStream(logger, level, current))
    logging.captureWarnings(True)


def job_logging(handler: logging.Handler, fmt: str) -> None:
    """Have ``handler``'s records carry their job's context, and with ``fmt`` ``json`` the
    process's prints come out as records too (:func:`log_prints`)."""
    handler.addFilter(JobContextFilter())
    if fmt == "json":
        log_prints()
