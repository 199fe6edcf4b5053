"""What a worker runs: job functions registered by jobtype, with their options.

A :class:`Registration` is one job function and the worker's options for its jobtype
(timeout, ``interrupt``, retry policy, retries-exhausted hook). :class:`Registrar` is the
registering half of :class:`~werk.client.worker.Worker` (``register``, ``add``,
``include``); a job whose jobtype nothing is registered for fails with
:class:`UnknownJobTypeError`, naming the jobtypes this worker runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from werk.client.exhausted import ExhaustedHook
from werk.client.retrypolicy import RetryDelay, RetryOn, check_retry_on
from werk.client.tasks import Task

F = TypeVar("F", bound=Callable[..., Any])


class UnknownJobTypeError(Exception):
    """A job arrived whose ``jobtype`` no function was registered for."""

    @classmethod
    def for_job(cls, job: dict[str, Any], registry: dict[str, Registration]) -> UnknownJobTypeError:
        """The error for ``job`` given ``registry``, with :func:`unknown_jobtype_message`:
        the one text the worker FAILs the job with and
        :class:`~werk.client.testing.InlineClient` raises."""
        return cls(unknown_jobtype_message(job, registry))


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered job function, whether it is a coroutine function, its timeout in
    seconds (``None``: no limit), its retries-exhausted hook, its retry policy
    (:mod:`werk.client.retrypolicy`: ``retry_in``, ``retry_on``) and whether a plain
    function past its timeout is interrupted (``interrupt``; see
    :mod:`werk.client.timeouts`)."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    timeout: float | None = None
    on_retries_exhausted: ExhaustedHook | None = None
    retry_in: RetryDelay | None = None
    retry_on: RetryOn | None = None
    interrupt: bool = False

    @classmethod
    def of(
        cls,
        name: str,
        func: Callable[..., Any],
        timeout: float | None = None,
        on_retries_exhausted: ExhaustedHook | None = None,
        retry_in: RetryDelay | None = None,
        retry_on: RetryOn | type[BaseException] | None = None,
        interrupt: bool = False,
    ) -> Registration:
        """Describe ``func`` registered under ``name``.

        Raises:
            ValueError: ``timeout`` is not positive.
            TypeError: ``retry_in`` is not callable, or ``retry_on`` holds something
                that is not an exception class.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive seconds")
        if retry_in is not None and not callable(retry_in):
            raise TypeError(f"retry_in takes a callable or a Backoff, not {retry_in!r}")
        is_async = inspect.iscoroutinefunction(func)
        classes = check_retry_on(retry_on)
        return cls(
            name, func, is_async, timeout, on_retries_exhausted, retry_in, classes, interrupt
        )


KNOWN_SHOWN = 10
"""How many of a worker's jobtypes an unknown jobtype's message lists."""


def known_jobtypes(registry: dict[str, Registration], shown: int | None = None) -> str:
    """Say which jobtypes a worker runs: the registry's own ``known()`` description when it
    has one (the Django worker resolves task paths on demand), else the sorted names, the
    first ``shown`` of them (``None``: all), or ``none``."""
    described = getattr(registry, "known", None)
    if callable(described):
        return str(described())
    names = sorted(registry)
    known = ", ".join(names if shown is None else names[:shown]) or "none"
    if shown is not None and len(names) > shown:
        known += f" and {len(names) - shown} more"
    return known


def unknown_jobtype_message(job: dict[str, Any], registry: dict[str, Registration]) -> str:
    """Say that no function runs ``job``'s jobtype, the queue the job came from, and the
    jobtypes this worker runs (the first :data:`KNOWN_SHOWN`, sorted; a registry with a
    ``known()`` method, such as the Django worker's, describes itself): the job was most
    likely pushed to a queue that workers of another kind also fetch.

    The job is FAILed, as Faktory's own workers do, and retried like any failure.
    """
    known = known_jobtypes(registry, KNOWN_SHOWN)
    return (
        f"no function registered for jobtype {job.get('jobtype', '')!r} (from queue"
        f" {job.get('queue', 'default')!r}; this worker runs {known}): push it to a queue"
        " that only workers running it fetch"
    )


class Registrar:
    """Registers job functions by jobtype: the registering half of a
    :class:`~werk.client.worker.Worker`.

    Attributes:
        registry: the registrations by jobtype (the Django worker puts a registry of its
            own here, which resolves jobtypes on demand).
    """

    def __init__(self) -> None:
        self.registry: dict[str, Registration] = {}
        self._declared: list[str] = []
        """Queues of included tasks, in the order they were first seen."""

    @overload
    def register(self, name: F) -> F: ...

    @overload
    def register(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        on_retries_exhausted: ExhaustedHook | None = None,
        retry_in: RetryDelay | None = None,
        retry_on: RetryOn | type[BaseException] | None = None,
        interrupt: bool = False,
    ) -> Callable[[F], F]: ...

    def register(
        self,
        name: str | F | None = None,
        *,
        timeout: float | None = None,
        on_retries_exhausted: ExhaustedHook | None = None,
        retry_in: RetryDelay | None = None,
        retry_on: RetryOn | type[BaseException] | None = None,
        interrupt: bool = False,
    ) -> F | Callable[[F], F]:
        """Register a job function, as ``@worker.register("Name")`` or ``@worker.register``.

        Without a name the function's ``__name__`` is the jobtype. ``async def`` functions
        run on the worker's event loop, plain functions on its thread pool. ``timeout``:
        seconds a job of this type may run (see :mod:`werk.client.timeouts`).
        ``on_retries_exhausted``: ``hook(job, exc)``, called once a job of this type
        failed for the last time (see :mod:`werk.client.exhausted`). ``retry_in``: the
        delay before each retry, ``policy(retry_count, exc) -> seconds | None`` or a
        :class:`~werk.client.retrypolicy.Backoff`; ``retry_on``: the exception classes
        worth a retry, any other sends the job to the dead set (see
        :mod:`werk.client.retrypolicy`). ``interrupt``: a plain function past its timeout
        gets ``JobTimeoutError`` raised in its thread instead of running on (a Werk
        extension, off by default: the exception can land inside library code holding a
        lock, logging's or a connection pool's, and freeze the whole worker; only for code
        that takes no locks, such as pure computation; see :mod:`werk.client.timeouts`).
        """
        if callable(name):
            return self.add(getattr(name, "__name__", repr(name)), name)

        def decorator(func: F) -> F:
            jobtype = name or func.__name__
            return self.add(
                jobtype,
                func,
                timeout=timeout,
                on_retries_exhausted=on_retries_exhausted,
                retry_in=retry_in,
                retry_on=retry_on,
                interrupt=interrupt,
            )

        return decorator

    def add(
        self,
        jobtype: str,
        func: F,
        *,
        timeout: float | None = None,
        on_retries_exhausted: ExhaustedHook | None = None,
        retry_in: RetryDelay | None = None,
        retry_on: RetryOn | type[BaseException] | None = None,
        interrupt: bool = False,
    ) -> F:
        """Register ``func`` for jobs of type ``jobtype``; return ``func``, with the options
        of :meth:`register`. Registering the same function again replaces its options.

        Raises:
            ValueError: ``timeout`` is not positive, or another function already has
                ``jobtype`` (two tasks named after their functions, ``send`` in two
                modules, say: give one another jobtype, ``@task("Name")``).
            TypeError: ``retry_in`` is not callable, or ``retry_on`` holds something
                that is not an exception class.
        """
        known = self.registry.get(jobtype)
        if known is not None and known.func is not func:
            raise ValueError(
                f"jobtype {jobtype!r} is already registered for {_qualified(known.func)}; "
                f"{_qualified(func)} needs another jobtype: @task('Name'), "
                "@worker.register('Name') or worker.add('Name', func)"
            )
        self.registry[jobtype] = Registration.of(
            jobtype, func, timeout, on_retries_exhausted, retry_in, retry_on, interrupt
        )
        return func

    def include(self, *tasks: Task[..., Any]) -> None:
        """Register declared tasks (:func:`werk.client.task`) under their jobtypes, with
        their timeouts (and ``interrupt``), retries-exhausted hooks and retry policies."""
        for declared in tasks:
            options = declared.options
            self.add(
                declared.jobtype,
                declared.func,
                timeout=options.timeout,
                on_retries_exhausted=options.on_retries_exhausted,
                retry_in=options.retry_in,
                retry_on=options.retry_on,
                interrupt=options.interrupt,
            )
            queue = options.queue
            if queue and queue not in self._declared:
                self._declared.append(queue)
                self._queues_declared()

    def _queues_declared(self) -> None:
        """Called once :meth:`include` added a queue to the declared ones."""


def _qualified(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, for messages."""
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"
