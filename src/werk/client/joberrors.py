"""What a job's exception is to the worker: the job's failure or a stop meant for the worker,
and how it is described in the job's FAIL without the description itself failing.

Whatever a job raises is its failure, FAILed like any exception (Celery reports a task's
``SystemExit`` as a failure too): ``SystemExit`` (``sys.exit()``, argparse's error exit),
``KeyboardInterrupt``, even ``GeneratorExit`` or ``CancelledError`` raised in a job's
thread. Only three exceptions are not the job's (:func:`is_job_failure`):

- ``CancelledError`` in a coroutine whose task the worker cancelled (a job still running at
  the shutdown deadline, handed back);
- ``GeneratorExit`` in a coroutine being closed;
- ``KeyboardInterrupt`` where a real Ctrl-C can raise it: in the main thread while Python's
  own SIGINT handler is in force (a :class:`~werk.client.worker.Worker` run in a program
  that handles no signals, or inline with :class:`~werk.client.testing.InlineWorker`).
  ``werk worker`` and ``Worker.run()`` handle SIGINT themselves (a graceful stop), so
  there a ``KeyboardInterrupt`` can only come from the job.

A FAIL describes the exception in text that never raises (:func:`describe`: a ``__str__``
that raises gives ``<unprintable NoStrError: str() raised RuntimeError>``) and can always
be sent (a lone surrogate, as ``os.fsdecode`` makes of undecodable bytes,
is sent as the text ``\\udcff``: :func:`werk.protocol.commands.sendable`).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any


def is_job_failure(exc: BaseException) -> bool:
    """Whether ``exc``, caught around a job's code (its function, its middleware hooks, a
    retry policy), is the job's failure rather than a stop meant for the worker."""
    if isinstance(exc, Exception | SystemExit):
        return True
    if isinstance(exc, KeyboardInterrupt):
        return not _sigint_raises_here()
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread: a job's thread
        return True
    if task is None:
        return True
    if isinstance(exc, asyncio.CancelledError):
        return task.cancelling() == 0  # nobody cancelled this task: the job's own error
    return False  # GeneratorExit: the coroutine is being closed


def _sigint_raises_here() -> bool:
    """Whether a real Ctrl-C can raise ``KeyboardInterrupt`` in this thread: the main
    thread, with Python's own SIGINT handler in force."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def describe(exc: BaseException) -> str:
    """``str(exc)``, else its class name when empty. Never raises (but for a real Ctrl-C
    landing there, see :func:`is_job_failure`): a ``__str__`` that raises gives
    ``<unprintable ValueError: str() raised RuntimeError>``."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException as failure:  # whatever a user's __str__ does, even sys.exit()
        if not is_job_failure(failure):
            raise
        return f"<unprintable {name}: str() raised {type(failure).__name__}>"
    return text or name


def attribute(exc: BaseException, name: str) -> Any:
    """``getattr(exc, name, None)`` that never raises (a property or ``__getattr__`` of a
    user's exception class may; a real Ctrl-C landing there still goes through)."""
    try:
        return getattr(exc, name, None)
    except BaseException as failure:  # a user's property, whatever it raises
        if not is_job_failure(failure):
            raise
        return None
