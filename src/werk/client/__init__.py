"""Werk's Python client and worker library; works with Werk and any Faktory server.

Declare job types with :func:`task` and push them with ``.push(...)``; run them with
:meth:`Worker.include`. Below that, producers use :class:`Client` (blocking) or
:class:`AsyncClient` (asyncio) to push jobs built with :class:`Job`; consumers register
functions on a :class:`Worker` and run it.
This package never imports the server's modules, though installing ``werk`` brings the
server's dependencies too (one package).
"""

from __future__ import annotations

from werk.client.async_client import AsyncClient
from werk.client.chains import Chain, chain, takes_result
from werk.client.client import Client
from werk.client.connection import (
    AsyncConnection,
    Connection,
    ConnectionClosedError,
    NoGreetingError,
    NotWorkPortError,
    ServerUnreachableError,
)
from werk.client.failures import NoRetry, RetryIn
from werk.client.job import Job
from werk.client.middleware import Middleware
from werk.client.processes import ProcessInfo
from werk.client.processor import WorkerCrashedError
from werk.client.proto import ClientProtocol, Identity
from werk.client.pushed import BulkPushed, Pushed, set_default_client
from werk.client.recycling import RECYCLE_STATUS
from werk.client.registration import UnknownJobTypeError
from werk.client.reports import SHUTDOWN_ERRTYPE
from werk.client.results import JobFailedError, JobState, ResultTimeoutError, UnknownJobError
from werk.client.retrypolicy import Backoff
from werk.client.runner import current_job
from werk.client.sets import JobsPage, SetEntry
from werk.client.tasks import Task, task
from werk.client.timelimit import TIMEOUT_ERRTYPE, JobTimeoutError
from werk.client.url import ConfigurationError, ServerAddress, parse_url
from werk.client.worker import Worker
from werk.errors import AuthenticationError, CommandError, NotUniqueError, ProtocolError, WerkError

__all__ = [
    # tasks
    "BulkPushed",
    "Chain",
    "Pushed",
    "Task",
    "chain",
    "set_default_client",
    "takes_result",
    "task",
    # producing
    "AsyncClient",
    "Client",
    "Job",
    # the retry, scheduled and dead sets, the running jobs and the worker processes
    "JobsPage",
    "ProcessInfo",
    "SetEntry",
    # results
    "JobFailedError",
    "JobState",
    "ResultTimeoutError",
    "UnknownJobError",
    # consuming
    "Backoff",
    "Middleware",
    "RECYCLE_STATUS",
    "SHUTDOWN_ERRTYPE",
    "TIMEOUT_ERRTYPE",
    "JobTimeoutError",
    "NoRetry",
    "RetryIn",
    "UnknownJobTypeError",
    "Worker",
    "current_job",
    # connections
    "AsyncConnection",
    "ClientProtocol",
    "Connection",
    "Identity",
    "ServerAddress",
    "parse_url",
    # errors
    "AuthenticationError",
    "CommandError",
    "ConfigurationError",
    "ConnectionClosedError",
    "NoGreetingError",
    "NotUniqueError",
    "NotWorkPortError",
    "ProtocolError",
    "ServerUnreachableError",
    "WerkError",
    "WorkerCrashedError",
]
