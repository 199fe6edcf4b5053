"""``werk worker module:attr``: run a :class:`~werk.client.Worker` from an import path.

The attribute may be a ``Worker`` (its settings are the defaults, the flags override them)
or a registry: a declared task (:func:`werk.client.task`), a function (registered under its
own name), a mapping of jobtype to function, or a module-level list of functions or
declared tasks. Anything else is refused with a message naming these kinds.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from werk.cli.argtypes import positive_int, queue_spec, seconds, server_url
from werk.cli.server import setup_logging
from werk.cli.supervisor import Supervisor, child_argv
from werk.client import Task, Worker, WorkerCrashedError
from werk.client.joblog import job_logging
from werk.client.recycling import RECYCLE_STATUS
from werk.errors import WerkError
from werk.server.settings import LOG_FORMATS

CRASH_STATUS = 70
"""``werk worker``'s exit status after a part of the worker crashed (a bug, logged at
CRITICAL; the job it held was FAILed): ``EX_SOFTWARE`` of sysexits.h. Not one of the
statuses that make ``-p``'s supervisor stop the others: it starts another worker."""

WORKER_LEVELS = ("debug", "info", "warn", "warning", "error")


def register(subparsers: Any) -> None:
    """Add the ``worker`` subcommand."""
    defaults = {name: param.default for name, param in inspect.signature(Worker).parameters.items()}
    parser = subparsers.add_parser(
        "worker",
        help="run a Python worker",
        description="Fetch and run jobs with the functions registered on a Worker. TARGET is"
        " module:attr, where attr is a Worker (its settings are the defaults, the flags"
        " override them), a declared task, a function (registered under its own name), a"
        " mapping of jobtype to function, or a list of functions and declared tasks."
        " SIGTERM or Ctrl-C stops it gracefully; a second one stops at once, handing"
        " running jobs back.",
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="module:attr of a Worker, a task, a function, a {jobtype: function} mapping or a"
        " list of functions and tasks",
    )
    parser.add_argument(
        "-q",
        "--queue",
        action="append",
        type=queue_spec,
        default=[],
        metavar="NAME[,WEIGHT]",
        help="queue to fetch from, repeatable; weights make the order weighted (default:"
        " default plus the queues the TARGET's tasks declare, in a fresh random order per"
        " fetch)",
    )
    parser.add_argument(
        "-c",
        "--concurrency",
        type=positive_int,
        help=f"jobs running at once, one connection each (default {defaults['concurrency']})",
    )
    parser.add_argument(
        "--url",
        type=server_url,
        help="server URL, tcp://:password@host:port (default $WERK_URL, $FAKTORY_URL, else"
        " tcp://localhost:7419)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        help=f"label shown on the Busy page, repeatable (default {', '.join(defaults['labels'])})",
    )
    parser.add_argument(
        "-p",
        "--processes",
        type=positive_int,
        help="worker processes to run, each with CONCURRENCY jobs at once, under this one,"
        " which restarts any that exits (default: none, this process is the worker; use the"
        " number of cores for CPU-bound jobs, 1 to have a recycled worker replaced)",
    )
    parser.add_argument(
        "--max-jobs",
        type=positive_int,
        metavar="N",
        help="after N jobs (done or failed), stop fetching, let running jobs finish and"
        f" exit with status {RECYCLE_STATUS}, to be replaced by a fresh process: by -p's"
        " supervisor at once, else by your process manager (default: no limit)",
    )
    parser.add_argument(
        "--max-memory",
        type=positive_int,
        metavar="MIB",
        help="the same once this process's resident memory, checked after each job, is"
        " above MIB mebibytes (default: no limit)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=seconds,
        help="seconds running jobs get to finish on stop (default"
        f" {defaults['shutdown_timeout']:g})",
    )
    parser.add_argument(
        "-l",
        "--log-level",
        default="info",
        choices=WORKER_LEVELS,
        help="debug, info (default; one line per job), warning, error",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text (one line per event) or json (one object per line, with jid and jobtype,"
        " prints included; default text)",
    )
    parser.set_defaults(func=run)


def load_target(path: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return the object.

    Raises:
        ValueError: the path has no ``:``.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not attr:
        raise ValueError(f"expected module:attr, got {path!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


TARGET_KINDS = (
    "a Worker, a task (@task), a function, a {jobtype: function} mapping, or a list of"
    " functions and tasks"
)


def _function(obj: Any) -> bool:
    """Whether ``obj`` can be registered under its own name: a function, not a class."""
    return callable(obj) and not isinstance(obj, type) and hasattr(obj, "__name__")


def build_worker(target: Any, args: argparse.Namespace) -> Worker:
    """Return the worker for ``target``, with the command-line flags applied.

    Raises:
        TypeError: ``target`` (or one of its items) is none of the accepted kinds.
    """
    worker = target if isinstance(target, Worker) else registry_worker(target)
    if args.url:
        worker._url = args.url
    if args.queue:
        worker.queues = type(worker.queues)(args.queue)
    if args.concurrency is not None:
        worker.concurrency = args.concurrency
    if args.label:
        worker.labels = tuple(args.label)
    if args.shutdown_timeout is not None:
        worker.shutdown_timeout = args.shutdown_timeout
    if args.max_jobs is not None:
        worker.max_jobs = args.max_jobs
    if args.max_memory is not None:
        worker.max_memory = args.max_memory
    return worker


def registry_worker(target: Any) -> Worker:
    """Return a default Worker with the functions and tasks of ``target`` registered.

    Raises:
        TypeError: ``target`` (or one of its items) is none of the accepted kinds.
    """
    if isinstance(target, Mapping):
        items = list(target.values())
    elif isinstance(target, Task) or _function(target):
        items = [target]
    elif isinstance(target, list | tuple | set | frozenset):
        items = list(target)
    else:
        raise TypeError(f"it is {_kind(target)}; expected {TARGET_KINDS}")
    for item in items:
        if not isinstance(item, Task) and not _function(item):
            raise TypeError(f"it holds {_kind(item)}; expected {TARGET_KINDS}")
    worker = Worker()
    functions: Mapping[str, Callable[..., Any]] = target if isinstance(target, Mapping) else {}
    if not functions:
        worker.include(*(item for item in items if isinstance(item, Task)))
        functions = {f.__name__: f for f in items if not isinstance(f, Task)}
    for name, func in functions.items():
        worker.add(name, func)
    return worker


def _kind(obj: Any) -> str:
    name = type(obj).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def run(args: argparse.Namespace) -> int:
    """Run ``werk worker``; return 0 after a graceful stop, :data:`RECYCLE_STATUS` after
    one at ``--max-jobs`` or ``--max-memory``, :data:`CRASH_STATUS` after one because a
    part of the worker crashed."""
    setup_logging("warn" if args.log_level == "warning" else args.log_level, args.log_format)
    job_logging(logging.getLogger().handlers[0], args.log_format)
    log = logging.getLogger("werk.worker")
    try:
        worker = build_worker(load_target(args.target), args)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        log.error("cannot load %s: %s", args.target, exc)
        return 2
    if args.processes is not None:  # the target loads: start the workers it describes
        return Supervisor(child_argv(args), args.processes).run()
    try:
        worker.run()
    except WorkerCrashedError as exc:  # logged with its traceback when it happened
        log.error("worker stopped: %s", exc)
        return CRASH_STATUS
    except (WerkError, OSError) as exc:
        log.error("worker stopped: %s", exc)
        return 1
    status = RECYCLE_STATUS if worker.recycled else 0
    if worker.abandoned:
        # Those jobs were FAILed back to the server; do not wait for their threads.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
