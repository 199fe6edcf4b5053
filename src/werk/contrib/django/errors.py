"""Exception classes for the errtypes a Django task can end with that are no Python class.

Django's ``TaskError.exception_class`` imports ``exception_class_path``. Werk's Django worker
reports a task's exception by its dotted path, but some failures come from elsewhere: the
server ends a job whose worker died (``ReservationExpired``, Faktory's rule), that was deleted,
killed or expired before it ran, or whose chain ended (Werk's rules), and a worker in another
language names its own types (``Faraday::ConnectionFailed``). Each such errtype maps to a class
here (:func:`exception_path`), so that ``exception_class`` works for every failed task.
"""

from __future__ import annotations

import builtins

from werk.client import JobTimeoutError


class ReservationExpired(Exception):
    """The task's worker did not ACK or FAIL it within ``reserve_for`` (it died, most
    likely): Faktory's rule fails the job with this errtype."""


class Deleted(Exception):
    """The task was deleted before it ran (Werk: MUTATE discard, QUEUE REMOVE, the web UI)."""


class Killed(Exception):
    """The task was moved to the dead set by hand before it ever failed (Werk: MUTATE kill)."""


class Expired(Exception):
    """The task's ``expires_at`` passed before it ran (Werk's expiring jobs)."""


class ChainEnded(Exception):
    """An earlier step of the task's chain failed for good, so this step never runs."""


class WorkerShutdown(Exception):
    """A worker stopping handed the task back (Werk: it runs again, using no retry)."""


class ForeignError(Exception):
    """A failure whose errtype names no Python class (a worker in another language); the
    traceback's last line keeps the errtype as that worker reported it."""


KNOWN: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (ReservationExpired, Deleted, Killed, Expired, ChainEnded, WorkerShutdown)
}
KNOWN["JobTimeout"] = JobTimeoutError


def exception_path(errtype: str) -> str:
    """Return an importable dotted path of an exception class for ``errtype``: the
    errtype itself when it is a dotted path (Werk's Django worker reports one), a builtin
    exception's (``builtins.LookupError``), one of this module's classes for Werk's and
    Faktory's own errtypes, else :class:`ForeignError`'s."""
    if "." in errtype:
        return errtype
    found = getattr(builtins, errtype, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return f"builtins.{errtype}"
    cls = KNOWN.get(errtype, ForeignError)
    return f"{cls.__module__}.{cls.__qualname__}"
