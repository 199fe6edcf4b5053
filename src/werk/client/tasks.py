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
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from werk.client.client import Client
from werk.client.exhausted import ExhaustedHook
from werk.client.job import Job
from werk.client.results import JobState
from werk.client.retrypolicy import RetryDelay, RetryOn, check_retry_on

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")


class TaskClient(Protocol):
    """What tasks push and read results with: a :class:`Client`, or a
    :class:`~werk.client.testing.InlineClient` that runs jobs as they are pushed."""

    def push(self, job: Job | Mapping[str, Any]) -> str: ...

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]: ...

    def job_state(self, jid: str, timeout: float | None = 0.0) -> JobState: ...

    def result(self, jid: str, timeout: float | None = None) -> Any: ...

    def delete_queued(self, queue: str, *jids: str) -> int: ...

    def delete_unrun(self, queue: str, jid: str) -> bool: ...


_default: TaskClient | None = None
_default_lock = threading.Lock()


def default_client() -> TaskClient:
    """The client tasks push with unless given one: set by :func:`set_default_client`, else
    a :class:`Client` made on first use from ``WERK_URL``/``FAKTORY_URL``."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_default_client(client: TaskClient | None) -> None:
    """Make ``client`` the one tasks push with (``None``: make one from the environment)."""
    global _default
    with _default_lock:
        _default = client


@dataclass(frozen=True, slots=True)
class Pushed(Generic[R]):
    """A job the server accepted: its ``jid``, ``jobtype`` and ``queue``, and a handle on
    its outcome (for a task declared with ``result_ttl``, Werk's job results)."""

    jid: str
    jobtype: str
    queue: str
    client: TaskClient | None = field(default=None, repr=False, compare=False)

    def result(self, timeout: float | None = None) -> R:
        """Wait up to ``timeout`` seconds (``None``: no limit) for the job to end, on the
        server, and return its function's return value.

        Raises:
            JobFailedError: the job failed for good (discarded or dead).
            UnknownJobError: nothing is known of the job (declared without
                ``result_ttl``, or its result expired).
            ResultTimeoutError: the job had not ended in time.
        """
        value: R = self._client().result(self.jid, timeout)
        return value

    def state(self, timeout: float | None = 0.0) -> JobState:
        """Return what the server knows of the job now (or once it ended, waiting up to
        ``timeout`` seconds): see :meth:`werk.client.Client.job_state`."""
        return self._client().job_state(self.jid, timeout)

    def delete(self) -> bool:
        """Delete the job if it has not run yet, waiting in its queue or, pushed with
        ``push_in``/``push_at``, in the scheduled set; return whether it was deleted before
        it ran. A job a worker already fetched keeps running; see
        :meth:`werk.client.Client.delete_unrun`."""
        return self._client().delete_unrun(self.queue, self.jid)

    def _client(self) -> TaskClient:
        return self.client if self.client is not None else default_client()


@dataclass(frozen=True, slots=True)
class BulkPushed:
    """What :meth:`Task.push_bulk` did: the jobs accepted, and ``{jid: error}`` refused."""

    pushed: list[Pushed[Any]]
    refused: dict[str, str]


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


CHAIN_MAX_STEPS = 50
"""The most steps after the first that a chain may carry (the server's limit)."""


@dataclass(slots=True)
class Chain(Job):
    """A chain's first job, carrying the steps after it in ``custom.chain`` (Werk's chains
    extension; built by :func:`chain`). It is a :class:`Job`: :meth:`Client.push
    <werk.client.Client.push>`, ``push_bulk`` and :class:`~werk.client.AsyncClient` push it
    as one. :meth:`push` returns a :class:`Pushed` on the chain's last step.

    Attributes:
        last: the chain's last step (its jid was fixed when the chain was built).
    """

    last: Job | None = None

    def push(self, client: TaskClient | None = None) -> Pushed[Any]:
        """Push the chain (with ``client``, else :func:`default_client`) and return a handle
        on its last step: ``.result()`` waits for the value the last step returned, when it
        has ``result_ttl`` (Celery's ``chain(...).apply_async().get()``).

        Raises:
            CommandError: the server refused the chain (the message names the step).
        """
        (client or default_client()).push(self)
        last = self.last or self
        return Pushed(last.jid, last.jobtype, last.queue or "default", client)


def takes_result(job: Job) -> Job:
    """Return a copy of ``job`` that, as a step of a :func:`chain`, gets the return value of
    the step before it prepended to its ``args`` (``custom.chain_result``; Celery's ``.s()``
    as opposed to ``.si()``)."""
    return replace(job, custom={**(job.custom or {}), "chain_result": True})


def chain(*jobs: Job) -> Chain:
    """Chain jobs (Celery's ``chain``): the server pushes each one once the one before it
    succeeded; a failure waits for its retry, and a job that dies ends the chain.

    A step built with :meth:`Task.step` (or marked with :func:`takes_result`) gets the
    return value of the step before it as its first argument (Celery's ``.s()``); a step
    built with :meth:`Task.job` takes nothing (Celery's ``.si()``). Needs a Werk server: a
    Faktory server runs the first job only.

    Raises:
        ValueError: fewer than two jobs, more than 51, a step that carries a chain, a
            first job that takes a result (nothing runs before it), or one jid twice (the
            same ``Job`` given twice, say).
    """
    if not 2 <= len(jobs) <= CHAIN_MAX_STEPS + 1:
        raise ValueError(f"a chain takes 2 to {CHAIN_MAX_STEPS + 1} jobs, not {len(jobs)}")
    if (jobs[0].custom or {}).get("chain_result"):
        raise ValueError(
            "the first job of a chain takes the result of the step before it, and there is"
            " none: build it with .job(...), not .step(...)"
        )
    if len({job.jid for job in jobs}) < len(jobs):
        raise ValueError("a chain holds one jid twice: give each step a Job of its own")
    steps = []
    for index, job in enumerate(jobs):
        if isinstance(job, Chain) or "chain" in (job.custom or {}):
            raise ValueError(f"job {index} of the chain carries a chain itself: chains do not nest")
        if index:
            steps.append(job.to_dict())
    first = jobs[0]
    values = {f.name: getattr(first, f.name) for f in fields(Job)}
    values["custom"] = {**(first.custom or {}), "chain": steps}
    return Chain(**values, last=jobs[-1])


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
    that takes no locks, such as pure computation; see :mod:`werk.client.runner`).
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
