"""The task API: declare a job type once, with its defaults, and push it by calling methods.

::

    @task(queue="mail", retry=5, timeout=30)
    def send_email(address: str, subject: str = "Hello") -> None: ...

    send_email.push("ann@example.com", subject="Welcome")     # -> Pushed(jid=...)
    add.push(2, 3).result(timeout=10)                          # 5, for @task(result_ttl=...)
    send_email.push_in(timedelta(hours=1), "bob@example.com")  # scheduled
    send_email.push_bulk([send_email.job(a) for a in addresses])
    chain(fetch.job(url), parse.step(), store.step()).push().result(timeout=60)  # chains

The decorator returns a :class:`Task`: calling it runs the function as before; ``push`` and
friends take the function's own parameters, which mypy checks (``ParamSpec``). A producer
needs only the module that declares the task (the function is never run there); a worker
registers it with :meth:`Worker.include <werk.client.worker.Worker.include>`.

**Arguments on the wire.** Faktory jobs carry a JSON array of positional ``args``, and
workers in every language read them by position. So keyword arguments are bound to the
function's signature and sent as positions in parameter order (a skipped optional parameter
before a given one is sent as its default; trailing ones are left out). Functions with
keyword-only parameters or ``**kwargs`` cannot be declared as tasks. ``send_email.push("ann",
subject="Hi")`` and ``send_email.push("ann", "Hi")`` both send ``args ["ann", "Hi"]``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from werk.client.chains import Chain, takes_result
from werk.client.exhausted import ExhaustedHook
from werk.client.job import Job
from werk.client.pushed import BulkPushed, Pushed, TaskClient, default_client
from werk.client.retrypolicy import RetryDelay, RetryOn, check_retry_on

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's job defaults; ``None`` leaves a field to the server (or, for ``timeout``,
    to no limit). ``on_retries_exhausted``, ``retry_in``, ``retry_on`` and ``interrupt``
    are the worker's, never sent: see :func:`task`."""

    queue: str | None = None
    retry: int | None = None
    priority: int | None = None
    reserve_for: int | None = None
    timeout: float | None = None
    backtrace: int | None = None
    custom: Mapping[str, Any] | None = field(default=None, hash=False)
    result_ttl: float | None = None
    unique_for: float | None = None
    unique_until: str | None = None
    expires_in: float | None = None
    track: bool = False
    on_retries_exhausted: ExhaustedHook | None = field(default=None, compare=False)
    retry_in: RetryDelay | None = field(default=None, compare=False)
    retry_on: RetryOn | None = None
    interrupt: bool = False


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    signature = inspect.signature(func)
    for param in signature.parameters.values():
        if param.kind in (param.KEYWORD_ONLY, param.VAR_KEYWORD):
            raise TypeError(
                f"task {func.__qualname__}: parameter {param.name!r} cannot travel as a "
                "positional job argument (keyword-only parameters and **kwargs are not allowed)"
            )
    return signature


def positional_args(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    """Bind ``args``/``kwargs`` to ``signature`` and return them as positions in parameter
    order (see the module docstring).

    Raises:
        TypeError: the arguments do not fit the signature; a keyword the function has no
            parameter for is named first (before any missing argument).
    """
    unexpected = [name for name in kwargs if name not in signature.parameters]
    if unexpected:
        raise TypeError(
            f"got an unexpected keyword argument {unexpected[0]!r}"
            f" (the parameters are: {', '.join(signature.parameters) or 'none'})"
        )
    bound = signature.bind(*args, **kwargs).arguments
    out: list[Any] = []
    waiting: list[Any] = []  # defaults of skipped parameters, sent only if a later one is given
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_POSITIONAL:
            if bound.get(name):
                out += waiting
                out.extend(bound[name])
            break
        if name in bound:
            out += waiting
            waiting = []
            out.append(bound[name])
        else:
            waiting.append(param.default)
    return out


class Task(Generic[P, R]):
    """A declared job type: its function, jobtype and job defaults (see :func:`task`).

    Calling the task calls the function. The ``push`` methods take the function's own
    arguments and return a :class:`Pushed` with the new job's jid.
    """

    def __init__(
        self,
        func: Callable[P, R],
        jobtype: str | None = None,
        options: TaskOptions | None = None,
        client: TaskClient | None = None,
    ) -> None:
        self.func = func
        self.jobtype = jobtype or func.__name__
        self.options = options or TaskOptions()
        if self.options.timeout is not None and self.options.timeout <= 0:
            raise ValueError("timeout must be positive seconds")
        self.client = client
        self.signature = _signature(func)
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", self.jobtype)

    def __repr__(self) -> str:
        return f"<Task {self.jobtype} queue={self.options.queue or 'default'}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no job is pushed)."""
        return self.func(*args, **kwargs)

    def with_options(self, **options: Any) -> Task[P, R]:
        """Return a copy of the task with some job defaults changed for its pushes, e.g.
        ``send_email.with_options(queue="urgent", priority=9).push(...)``.

        A dict-valued option (``custom``) is merged into the declared one key by key: the
        keys given override, the declared others stay, so
        ``with_options(custom={"bid": bid})`` keeps a declared ``unique_for`` or ``track``.
        ``custom=None`` drops the declared ``custom``.

        Raises:
            TypeError: an option is not a :class:`TaskOptions` field.
        """
        for name, value in options.items():
            declared = getattr(self.options, name, None)
            if isinstance(value, Mapping) and isinstance(declared, Mapping):
                options[name] = {**declared, **value}
        return Task(self.func, self.jobtype, replace(self.options, **options), self.client)

    def using(self, client: TaskClient) -> Task[P, R]:
        """Return a copy of the task that pushes with ``client``."""
        return Task(self.func, self.jobtype, self.options, client)

    def job(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Build the :class:`Job` a push would send (for ``push_bulk``, batches, or
        :class:`AsyncClient <werk.client.async_client.AsyncClient>`)."""
        return self._job(None, args, kwargs)

    def step(self: Task[Concatenate[Any, Q], R], *args: Q.args, **kwargs: Q.kwargs) -> Job:
        """Build a :func:`chain` step that takes the return value of the step before it as
        its first argument (Celery's ``.s()``): ``args``/``kwargs`` are the others, and the
        server prepends the value (``custom.chain_result``).

        Raises:
            TypeError: the arguments do not fit the function's signature after its first
                parameter.
        """
        positions = positional_args(self.signature, (None, *args), kwargs)
        return takes_result(self._build(None, positions[1:]))

    def push(self, *args: P.args, **kwargs: P.kwargs) -> Pushed[R]:
        """Push one job with these arguments.

        Raises:
            TypeError: the arguments do not fit the function's signature.
            CommandError: the server refused the job.
        """
        return self._push(self._job(None, args, kwargs))

    def push_at(
        self, at: datetime | float | str, /, *args: P.args, **kwargs: P.kwargs
    ) -> Pushed[R]:
        """Push a job that runs no earlier than ``at`` (aware datetime, Unix seconds or
        RFC 3339 text)."""
        return self._push(self._job(at, args, kwargs))

    def push_in(self, delay: timedelta | float, /, *args: P.args, **kwargs: P.kwargs) -> Pushed[R]:
        """Push a job that runs no earlier than ``delay`` (seconds or a timedelta) from now."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        return self._push(self._job(time.time() + seconds, args, kwargs))

    def push_bulk(self, jobs: Iterable[Job]) -> BulkPushed:
        """Push jobs built with :meth:`job` in one PUSHB (one round trip)."""
        batch = list(jobs)
        refused = self._client().push_bulk(batch)
        pushed = [self._pushed(job) for job in batch if job.jid not in refused]
        return BulkPushed(pushed, refused)

    def _job(self, at: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job:
        return self._build(at, positional_args(self.signature, args, kwargs))

    def _build(self, at: Any, positions: list[Any]) -> Job:
        opts = self.options
        return Job(
            self.jobtype,
            positions,
            queue=opts.queue,
            at=at,
            retry=opts.retry,
            reserve_for=opts.reserve_for,
            priority=opts.priority,
            backtrace=opts.backtrace,
            custom=opts.custom,
            timeout=opts.timeout,
            result_ttl=opts.result_ttl,
            unique_for=opts.unique_for,
            unique_until=opts.unique_until,
            expires_in=opts.expires_in,
            track=opts.track,
        )

    def _client(self) -> TaskClient:
        return self.client if self.client is not None else default_client()

    def _push(self, job: Job) -> Pushed[R]:
        self._client().push(job)
        return self._pushed(job)

    def _pushed(self, job: Job) -> Pushed[R]:
        if isinstance(job, Chain) and job.last is not None:
            job = job.last  # the handle of a chain is on its last step
        return Pushed(job.jid, job.jobtype, job.queue or "default", self.client)


@overload
def task(jobtype: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    jobtype: str | None = None,
    /,
    *,
    queue: str | None = None,
    retry: int | None = None,
    priority: int | None = None,
    reserve_for: int | None = None,
    timeout: float | None = None,
    backtrace: int | None = None,
    custom: Mapping[str, Any] | None = None,
    result_ttl: float | None = None,
    unique_for: float | None = None,
    unique_until: str | None = None,
    expires_in: float | None = None,
    track: bool = False,
    on_retries_exhausted: ExhaustedHook | None = None,
    retry_in: RetryDelay | None = None,
    retry_on: RetryOn | type[BaseException] | None = None,
    interrupt: bool = False,
    client: TaskClient | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    jobtype: str | Callable[P, R] | None = None,
    /,
    *,
    queue: str | None = None,
    retry: int | None = None,
    priority: int | None = None,
    reserve_for: int | None = None,
    timeout: float | None = None,
    backtrace: int | None = None,
    custom: Mapping[str, Any] | None = None,
    result_ttl: float | None = None,
    unique_for: float | None = None,
    unique_until: str | None = None,
    expires_in: float | None = None,
    track: bool = False,
    on_retries_exhausted: ExhaustedHook | None = None,
    retry_in: RetryDelay | None = None,
    retry_on: RetryOn | type[BaseException] | None = None,
    interrupt: bool = False,
    client: TaskClient | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a job type: ``@task`` or ``@task("JobType", queue=..., retry=..., ...)``.

    Without a name the function's ``__name__`` is the jobtype. The options are the job
    defaults of every push: ``queue``, ``retry``, ``priority`` (1..9, Werk), ``reserve_for``
    (seconds), ``backtrace``, ``custom``, and ``timeout`` (seconds the worker lets it run;
    sent as ``custom.timeout``), ``result_ttl`` (seconds a Werk server keeps the outcome
    and return value, which :meth:`Pushed.result` waits for; sent as ``custom.result_ttl``),
    ``unique_for``/``unique_until``, ``expires_in`` and ``track`` (Faktory Enterprise's
    unique, expiring and tracked jobs, sent in ``custom``: see :class:`Job`).
    ``on_retries_exhausted``: ``hook(job, exc)``, called by the worker once the job failed
    for the last time (dead set, or discarded with ``retry=0``); see
    :mod:`werk.client.exhausted`. ``retry_in``: ``policy(retry_count, exc) -> seconds |
    None`` or a :class:`~werk.client.retrypolicy.Backoff`, the delay before each retry
    (Sidekiq's ``sidekiq_retry_in``, Celery's ``retry_backoff``); ``retry_on``: the
    exception classes worth a retry, any other sends the job to the dead set at once
    (Celery's ``autoretry_for``); both are the worker's, see
    :mod:`werk.client.retrypolicy`. ``interrupt``: a plain function past its ``timeout``
    gets ``JobTimeoutError`` raised in its thread instead of running on (the worker's, a
    Werk extension, off by default: the exception can land inside library code holding a
    lock, logging's or a connection pool's, and freeze the whole worker; only for code
    that takes no locks, such as pure computation; see :mod:`werk.client.timeouts`).
    ``client``: push with this client instead of :func:`default_client`.

    Raises:
        TypeError: the function has keyword-only parameters or ``**kwargs``; ``retry_in``
            is not callable; ``retry_on`` holds something other than exception classes.
        ValueError: ``timeout`` is not positive.
    """
    if retry_in is not None and not callable(retry_in):
        raise TypeError(f"retry_in takes a callable or a Backoff, not {retry_in!r}")
    options = TaskOptions(
        queue=queue,
        retry=retry,
        priority=priority,
        reserve_for=reserve_for,
        timeout=timeout,
        backtrace=backtrace,
        custom=custom,
        result_ttl=result_ttl,
        unique_for=unique_for,
        unique_until=unique_until,
        expires_in=expires_in,
        track=track,
        on_retries_exhausted=on_retries_exhausted,
        retry_in=retry_in,
        retry_on=check_retry_on(retry_on),
        interrupt=interrupt,
    )
    if callable(jobtype):
        return Task(jobtype, None, options, client)
    name = jobtype

    def declare(func: Callable[P, R]) -> Task[P, R]:
        return Task(func, name, options, client)

    return declare
