"""``werk worker --processes N``: N worker processes under one supervising process.

A Python worker is one process: its jobs share one interpreter (threads for ``def`` jobs,
the event loop for ``async def`` ones), so CPU-bound jobs use one core. With ``--processes
N`` the ``werk worker`` process starts N copies of itself (the same target and options,
``--processes`` left out), each a worker of its own on the Busy page (its own ``wid``), as
Celery's prefork pool, Dramatiq's ``--processes`` and Sidekiq Enterprise's swarm do. The
supervisor:

- forwards SIGTERM and SIGINT to every worker (each stops gracefully; a second signal makes
  them stop at once, handing running jobs back) and SIGTSTP (they stop fetching); the
  workers run in a process group of their own, so a terminal's Ctrl-C reaches them once,
  through the supervisor, and they get SIGTERM if the supervisor dies (Linux);
- starts a new worker at once in place of one that exits with
  :data:`~werk.client.recycling.RECYCLE_STATUS` (75: it reached ``--max-jobs`` or
  ``--max-memory`` and stopped gracefully to be replaced; not a crash);
- starts a new worker in place of one killed by a signal or crashed, waiting
  :data:`RESTART_DELAYS` between restarts when they keep failing; a worker that exits with
  0 was told to stop (the web UI's Stop) and is not replaced, and one that exits with 1 or
  2 (:data:`FATAL`: a wrong password, not a work port, a target that cannot load) would
  fail again, so the supervisor stops the others;
- exits once every worker has exited: 0 when all stopped cleanly (or were recycling as the
  stop came), else 1.

``werk worker -p 1`` is one worker under a supervisor: how to have a recycled worker
replaced without a process manager.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from werk.client.recycling import RECYCLE_STATUS
from werk.client.shutdown import STOP_SIGNALS

log = logging.getLogger("werk.worker")

RESTART_DELAYS = (0.0, 1.0, 5.0, 30.0)
"""Seconds before restarting a worker that exited unexpectedly, by how many exited in the
last minute (the last delay for more): a crash loop does not spin."""
POLL = 0.1
"""Seconds between the supervisor's looks at its workers."""
FATAL = {
    1: "an error it cannot retry, such as a wrong password or a port that is not a work"
    " port: see its log",
    2: "its target cannot be loaded",
}
"""``werk worker`` exit statuses that another try would meet again: the supervisor stops."""


def child_argv(args: argparse.Namespace) -> list[str]:
    """The ``werk worker`` arguments of one supervised worker: ``args`` as parsed, with
    ``--processes`` left out."""
    argv = [args.target, "--log-level", args.log_level, "--log-format", args.log_format]
    for name, weight in args.queue:
        argv += ["-q", f"{name},{weight}" if weight else name]
    for label in args.label:
        argv += ["--label", label]
    if args.concurrency is not None:
        argv += ["-c", str(args.concurrency)]
    if args.url is not None:
        argv += ["--url", args.url]
    if args.shutdown_timeout is not None:
        argv += ["--shutdown-timeout", repr(args.shutdown_timeout)]
    if args.max_jobs is not None:
        argv += ["--max-jobs", str(args.max_jobs)]
    if args.max_memory is not None:
        argv += ["--max-memory", str(args.max_memory)]
    return argv


@dataclass
class Supervisor:
    """Runs ``count`` ``werk worker`` processes with ``argv`` and keeps them running.

    Args:
        argv: the arguments of each worker (:func:`child_argv`).
        count: how many workers run at once.
    """

    argv: Sequence[str]
    count: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopping: bool = False
    failed: bool = False
    _signals: list[int] = field(default_factory=list)
    _exits: list[float] = field(default_factory=list)

    def run(self) -> int:
        """Start the workers, supervise them until they all exited after a stop, and
        return the exit status (0: every worker stopped cleanly)."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP)
        }
        try:
            self.workers = [self._start() for _ in range(self.count)]
            log.info(
                "supervising %d worker processes: pids %s",
                self.count,
                ", ".join(str(proc.pid) for proc in self.workers),
            )
            while self.workers:
                self._forward_signals()
                self._reap()
                time.sleep(POLL)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 1 if self.failed else 0

    def _start(self) -> subprocess.Popen[bytes]:
        # A process group of its own: Ctrl-C and Ctrl-Z at a terminal reach the supervisor
        # only, which forwards them once (a second copy would mean "stop at once").
        return subprocess.Popen(
            [sys.executable, "-m", "werk", "worker", *self.argv],
            process_group=0,
            preexec_fn=_stop_with_parent,
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _forward_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum != signal.SIGTSTP and not self.stopping:
                self.stopping = True
                log.info("stopping %d worker processes", len(self.workers))
            for proc in self.workers:
                if proc.poll() is None:
                    proc.send_signal(signum)

    def _reap(self) -> None:
        for proc in list(self.workers):
            status = proc.poll()
            if status is None:
                continue
            self.workers.remove(proc)
            if self.stopping:
                self.failed = self.failed or status not in (0, RECYCLE_STATUS)
                continue
            if status == 0:  # told to stop (the web UI's Stop): not replaced
                log.info("worker process %d stopped; %d left", proc.pid, len(self.workers))
                continue
            if status == RECYCLE_STATUS:  # asked to be replaced: at once, not a crash
                replacement = self._start()
                self.workers.append(replacement)
                log.info(
                    "worker process %d exited to be replaced; worker process %d started",
                    proc.pid,
                    replacement.pid,
                )
                continue
            if status in FATAL:
                log.error(
                    "worker process %d exited with status %d (%s): stopping the others",
                    proc.pid,
                    status,
                    FATAL[status],
                )
                self.failed = True
                self._signals.append(signal.SIGTERM)
                self._forward_signals()
                continue
            delay = self._restart_delay()
            log.warning(
                "worker process %d exited with status %d; starting another in %g s",
                proc.pid,
                status,
                delay,
            )
            self._sleep_unless_stopped(delay)
            if not self.stopping:
                replacement = self._start()
                self.workers.append(replacement)
                log.info("worker process %d started", replacement.pid)

    def _restart_delay(self) -> float:
        now = time.monotonic()
        self._exits = [at for at in self._exits if now - at < 60.0] + [now]
        return RESTART_DELAYS[min(len(self._exits), len(RESTART_DELAYS)) - 1]

    def _sleep_unless_stopped(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._signals:
            time.sleep(POLL)
        self._forward_signals()


def _stop_with_parent() -> None:
    """In a new worker process: block the stop signals until the worker has its handlers
    (:meth:`~werk.client.Worker.run` unblocks them), so that one forwarded while it starts
    up stops it gracefully instead of killing it; and (Linux) receive SIGTERM, a graceful
    stop, when the supervisor dies, so a killed supervisor leaves no workers behind."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
