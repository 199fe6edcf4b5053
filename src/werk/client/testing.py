"""Helpers for testing code that uses Werk: inline jobs, and a server in the test process.

:class:`InlineClient` runs each pushed job at once, in the caller's thread, through the
worker's registry and middleware, with no server: the quickest unit tests.
:func:`run_server` starts a real Werk server on a free port in a background thread, for
integration tests. This module is not imported by the worker.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werk.client.job import Job, job_dict
from werk.client.joberrors import describe
from werk.client.registration import UnknownJobTypeError
from werk.client.reports import reported_errtype, wants_result
from werk.client.results import JobState, ResultRefusedError, encode_result
from werk.client.runner import Runner, current_job
from werk.client.worker import Worker
from werk.job import next_step
from werk.protocol import jsonwire

CHAIN_ENDED_ERRTYPE = "ChainEnded"
"""``errtype`` of a chain's later step that never ran because its chain ended (the
server's, :mod:`werk.manager.chains`)."""

__all__ = ["InlineClient", "RunningServer", "current_job", "run_server"]


@dataclass
class InlineClient:
    """A stand-in for :class:`~werk.client.Client` that runs jobs as they are pushed.

    Args:
        worker: the worker whose registered functions and middleware run the jobs.
        raise_errors: re-raise a job's exception from :meth:`push` (default), or only
            record it in :attr:`failed`.

    It stands in for a :class:`~werk.client.Client` wherever tasks push
    (``set_default_client(InlineClient(worker))``, Celery's eager mode), and keeps what a
    real worker and server would: a job that asked for its result (``result_ttl``) has
    its outcome read by :meth:`result`/:meth:`job_state` (``Pushed.result()``), its return
    value as the server would keep it (a JSON round trip), or
    :class:`~werk.client.JobFailedError` for a job that raised; any other job is
    ``unknown`` there, as on a server. A return value a real worker would not send
    (:func:`~werk.client.results.encode_result`: too deep, not JSON) fails the job with
    :class:`~werk.client.results.ResultRefusedError`. A job that succeeds runs the next
    step of its :func:`~werk.client.chain` at once, as a Werk server pushes it; a step
    that fails ends its chain, and the later steps that asked for a result are recorded
    failed with errtype ``ChainEnded``, as the server records them.

    Not done here, as they are the server's: unique jobs, expiry, retries and their
    retries-exhausted hooks, throttles and rate limits, scheduling (``at`` runs at once),
    queues and their pauses, batches, and the size limit on results.

    Attributes:
        done: payloads of the jobs that succeeded, in order.
        failed: ``(payload, exception)`` of the jobs that raised.
    """

    worker: Worker
    raise_errors: bool = True
    done: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[dict[str, Any], BaseException]] = field(default_factory=list)
    _states: dict[str, JobState] = field(default_factory=dict, repr=False)

    def push(self, job: Job | Mapping[str, Any]) -> str:
        """Run the job now; return its jid.

        Raises:
            UnknownJobTypeError: no function is registered for the jobtype (the message
                is the one a real worker FAILs the job with).
            Exception: whatever the job raised, when ``raise_errors`` is set.
        """
        payload = job_dict(job)
        entry = self.worker.registry.get(payload.get("jobtype", ""))
        if entry is None:
            raise UnknownJobTypeError.for_job(payload, self.worker.registry)
        runner = Runner(self.worker.registry, self.worker.middleware)
        if entry.is_async:
            error, value = asyncio.run(runner._run_async(entry, payload))
        else:
            error, value = runner._run_sync(entry, payload)
        if error is None and value is not None and wants_result(payload):
            try:  # what a real worker sends, and the server keeps
                value = jsonwire.loads(encode_result(value))
            except ResultRefusedError as exc:
                error = exc
        jid = str(payload["jid"])
        custom = payload.get("custom")
        steps = custom.get("chain") if isinstance(custom, dict) else None
        if error is None:
            self.done.append(payload)
            self._keep(payload, {"state": "succeeded", "result": value})
            if isinstance(steps, list) and steps:  # a chain goes on, as a Werk server does
                step = next_step(steps, value, time.time())
                if jsonwire.depth(step) <= jsonwire.MAX_DEPTH:
                    self.push(step)
                else:
                    self._end_chain(
                        steps,
                        f"the chain ended after job {jid}: the next step"
                        f" with the result prepended nests deeper than {jsonwire.MAX_DEPTH} levels",
                    )
        else:
            self.failed.append((payload, error))
            failure = {"errtype": reported_errtype(error), "message": describe(error)}
            self._keep(payload, {"state": "failed", "error": failure})
            if isinstance(steps, list) and steps:
                self._end_chain(steps, f"the chain ended: job {jid} failed")
            if self.raise_errors:
                raise error
        return jid

    def _keep(self, payload: Mapping[str, Any], outcome: dict[str, Any]) -> None:
        """Record a job's outcome for :meth:`job_state`, if it asked (``result_ttl``)."""
        custom = payload.get("custom")
        if not isinstance(custom, dict) or custom.get("result_ttl") is None:
            return
        jid = str(payload["jid"])
        doc = {"jid": jid, "jobtype": payload.get("jobtype"), "queue": payload.get("queue")}
        self._states[jid] = JobState.from_doc({**doc, **outcome})

    def _end_chain(self, steps: list[Any], reason: str) -> None:
        """Record the later steps of an ended chain that asked for a result as failed with
        errtype ``ChainEnded`` (they never run)."""
        for step in steps:
            if isinstance(step, dict) and step.get("jid"):
                failure = {"errtype": CHAIN_ENDED_ERRTYPE, "message": reason}
                self._keep(step, {"state": "failed", "error": failure})

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Run every job now; return ``{jid: "errtype message"}`` for those that raised."""
        errors: dict[str, str] = {}
        for job in jobs:
            payload = job_dict(job)
            before = len(self.failed)
            try:
                self.push(payload)
            except Exception:
                pass
            if len(self.failed) > before:
                exc = self.failed[-1][1]
                errors[str(payload["jid"])] = f"{type(exc).__name__} {exc}"
        return errors

    def job_state(self, jid: str, timeout: float | None = 0.0) -> JobState:
        """Return the outcome of a job pushed here with ``result_ttl`` (``succeeded`` with
        its return value, or ``failed`` with its error), else ``unknown``; ``timeout`` is
        accepted for the :class:`~werk.client.Client` signature (inline jobs have ended
        already)."""
        return self._states.get(jid) or JobState(jid, "unknown")

    def result(self, jid: str, timeout: float | None = None) -> Any:
        """Return what a job pushed here returned, as :meth:`werk.client.Client.result`.

        Raises:
            JobFailedError: the job raised, or its chain ended before it ran.
            UnknownJobError: no job with this jid and ``result_ttl`` was pushed here.
        """
        return self.job_state(jid).value()

    def delete_queued(self, queue: str, *jids: str) -> int:
        """Return 0: inline jobs run when pushed and never wait in a queue."""
        return 0

    def delete_unrun(self, queue: str, jid: str) -> bool:
        """Return ``False``: inline jobs run when pushed (``at`` too) and never wait."""
        return False


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`run_server`.

    Attributes:
        host: the address it listens on.
        port: the port it listens on.
        password: its password, if any.
        data_dir: its data directory.
    """

    host: str
    port: int
    password: str | None
    data_dir: Path

    @property
    def url(self) -> str:
        """The ``tcp://`` URL to give clients and workers."""
        auth = f":{self.password}@" if self.password else ""
        return f"tcp://{auth}{self.host}:{self.port}"


@contextmanager
def run_server(
    password: str | None = None, data_dir: str | Path | None = None
) -> Iterator[RunningServer]:
    """Run a Werk server in a background thread of this process for the ``with`` block.

    It listens on 127.0.0.1 on a free port, without web UI, on ``data_dir`` (default: a
    temporary directory removed afterwards). Needs the full ``werk`` package installed.

    Example::

        with run_server() as server:
            Client(server.url).push(Job("SendEmail", ["ann@example.com"]))
    """
    with tempfile.TemporaryDirectory(prefix="werk-test-") as tmp:
        directory = Path(data_dir) if data_dir is not None else Path(tmp)
        thread = _ServerThread(password, directory)
        thread.start()
        try:
            port = thread.wait_started()
            yield RunningServer("127.0.0.1", port, password, directory)
        finally:
            thread.stop()


class _ServerThread(threading.Thread):
    def __init__(self, password: str | None, data_dir: Path) -> None:
        super().__init__(name="werk-test-server", daemon=True)
        self._password = password
        self._data_dir = data_dir
        self._ready = threading.Event()
        self._port = 0
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by wait_started
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from werk.server.config import ServerConfig  # lazily: workers never need the server
        from werk.server.server import Server

        config = ServerConfig(
            binding=("127.0.0.1", 0),
            web_binding=None,
            data_dir=self._data_dir,
            password=self._password,
        )
        server = Server(config)
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await server.start()
        self._port = server.port
        self._ready.set()
        await self._stop_event.wait()
        await server.stop()

    def wait_started(self, timeout: float = 15.0) -> int:
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the test server did not start: {self._error!r}")
        return self._port

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(15.0)
