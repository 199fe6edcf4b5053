"""Interrupting a plain (``def``) job that runs past its timeout: the opt-in of a
registration with ``interrupt=True`` (a Werk client extension).

By default a plain function past its timeout runs on in its thread (its FAIL goes out at
the timeout, its slot stays busy until it returns: :mod:`werk.client.timeouts`). Python cannot
stop a thread, but CPython can raise an exception in one: with ``interrupt=True``, when the
timeout passes, the worker raises :class:`JobTimeoutError` inside the job's thread with
``PyThreadState_SetAsyncExc``, the technique of Dramatiq's ``TimeLimit`` middleware, so the
function's own ``except``/``finally`` run (Celery's ``soft_time_limit`` gives tasks the
same chance) and its slot frees once it unwinds. A :class:`TimeLimit` guards one job: the
exception is sent only while that job's function runs, and one sent as the function returns
is cleared before the thread runs any other code of the worker's. A thread inside a call
that does not return to Python (``time.sleep``, a socket read) gets it only when that
call returns.

Why it is opt-in: the exception lands between any two Python instructions of the
function, including those of the libraries it calls. Landing in ``logging`` right after a
handler took its lock (or in a connection pool holding its own) leaves that lock held for
good: every thread that logs, the worker's event loop among them, then blocks forever, and
the worker stops reporting, beating and answering SIGTERM. No guard here can prevent that;
opt in only for functions that take no locks (pure computation).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any, Final

from werk.client.joberrors import describe

TIMEOUT_ERRTYPE = "JobTimeout"
"""``errtype`` of jobs FAILed because they ran past their timeout."""


class JobTimeoutError(Exception):
    """A job ran past its timeout; reported with errtype ``JobTimeout``.

    Raised inside a plain function's thread when its timeout passes (a function may catch
    it to clean up; it is reported as timed out all the same).
    """

    errtype = TIMEOUT_ERRTYPE

    def __init__(self, message: str = "the job ran past its timeout") -> None:
        super().__init__(message)


def _async_exc_setter() -> Callable[[int, Any], int] | None:
    """``PyThreadState_SetAsyncExc(thread id, exception class or NULL)`` with a prototype of
    our own (another library may set ``argtypes`` on ``ctypes.pythonapi``'s), or ``None``
    where the interpreter has no C API (PyPy): there a timed-out function runs on."""
    api = getattr(ctypes, "pythonapi", None)
    if api is None or not hasattr(api, "PyThreadState_SetAsyncExc"):
        return None
    prototype = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)
    setter: Callable[[int, Any], int] = prototype(("PyThreadState_SetAsyncExc", api))
    return setter


_SET_ASYNC_EXC: Final = _async_exc_setter()
_CLEAR: Final = ctypes.py_object()
"""The NULL that clears a thread's pending exception (made here: a call made while one is
pending could raise it)."""
INTERRUPTS: Final = _SET_ASYNC_EXC is not None
"""Whether this interpreter can interrupt a plain function (CPython: yes)."""

_PENDING, _RUNNING, _SENT, _EXPIRED, _DONE = range(5)
"""A :class:`TimeLimit`'s states: the function has not started; it runs; it runs and the
exception was sent; the limit passed before it started; it returned in time."""


class TimeLimit:
    """The timeout of one plain job, shared by the event loop (:meth:`expire`) and the job's
    thread (:meth:`call`). One lock orders the two: the exception is sent only in state
    running, and the thread leaves that state (clearing an exception not yet raised) under
    the same lock before it runs any code after the function.

    Args:
        seconds: the job's timeout.
    """

    __slots__ = ("_lock", "_state", "_thread", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._state = _PENDING
        self._thread = 0

    def call(self, func: Callable[..., Any], args: Any) -> Any:
        """Call ``func(*args)`` on this thread, open to :meth:`expire` while it runs.

        Call it inside a ``try`` that catches :class:`Exception`: the exception sent as the
        function returns may be raised in this method's own lines, not the function's.

        Raises:
            JobTimeoutError: the limit passed (before the function started, or while it ran
                and the function let the exception through).
            Exception: whatever the function raised.
        """
        try:
            self._arm()
            return func(*args)
        finally:
            self._disarm()

    def _arm(self) -> None:
        with self._lock:
            if self._state == _PENDING:
                self._thread = threading.get_ident()
                self._state = _RUNNING
                return
        raise JobTimeoutError(f"its timeout of {self.seconds:g}s passed before it started")

    def _disarm(self) -> None:
        with self._lock:
            if self._state == _SENT and _SET_ASYNC_EXC is not None:
                # Raised and caught by the function, or not raised yet (the function returned
                # as it was sent): clearing does nothing in the first case and, in the
                # second, keeps it from landing in the worker's code or the thread's next job.
                _SET_ASYNC_EXC(self._thread, _CLEAR)
            elif self._state == _RUNNING:
                self._state = _DONE

    def expire(self) -> None:
        """The timeout passed: raise :class:`JobTimeoutError` in the function's thread if
        it still runs, or keep it from starting. Nothing happens once it returned."""
        with self._lock:
            if self._state == _RUNNING:
                if _SET_ASYNC_EXC is not None:
                    _SET_ASYNC_EXC(self._thread, JobTimeoutError)
                self._state = _SENT
            elif self._state == _PENDING:
                self._state = _EXPIRED

    @property
    def expired(self) -> bool:
        """Whether the limit passed before the function returned (read once it returned)."""
        return self._state in (_SENT, _EXPIRED)

    def timed_out(self, error: BaseException | None) -> JobTimeoutError:
        """The error an expired job is reported with, whatever it ended with: ``error``
        (the function's exception, ``None`` when it returned; see :func:`timed_out`)."""
        if self._state == _EXPIRED and isinstance(error, JobTimeoutError):
            return error
        return timed_out(self.seconds, error, "interrupted", JobTimeoutError)


def timed_out(
    seconds: float, error: BaseException | None, how: str, signal: type[BaseException]
) -> JobTimeoutError:
    """The error a job is reported with when its timeout of ``seconds`` passed while it ran
    (``how``: ``interrupted``, ``cancelled``), whatever it then ended with: ``error``, its
    exception (the timeout's own ``signal`` class as it should be, or another), or ``None``
    when it returned. A job that catches the timeout's exception is still reported as timed
    out, never as done. The report keeps the traceback of ``error``: for an interrupted
    function, the line it was running when the exception landed."""
    message = f"{how} after its timeout of {seconds:g}s"
    if error is None:
        message += "; it returned all the same"
    elif not isinstance(error, signal):
        message += f"; it then raised {type(error).__name__}: {describe(error)}"
    report = JobTimeoutError(message)
    return report if error is None else report.with_traceback(error.__traceback__)
