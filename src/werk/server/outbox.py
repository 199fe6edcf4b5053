"""Command replies written together, once per pass of the event loop (Werk's own design).

A connection does not write its reply the moment its command is done: it queues it here,
and every queued reply goes out in one run at the loop's next pass (one ``call_soon``),
before the commands that arrived meanwhile are dispatched. Replies to one connection keep
their order; a connection that writes something else (a handshake line, a last error) or
closes first takes its queued reply out and writes it (:meth:`Outbox.flush`).

Why: a worker process waits in ``epoll`` between jobs, and on loopback the kernel wakes it
inside the server's ``write()`` (``sock_def_readable``: server system time). Written one by
one while the loop dispatches the next commands, each reply woke a worker that ran one job
and went back to sleep, so the server paid a wake-up per job, and more so the faster the
worker (issue 14's worker slept 1.4 times as often per job as the one before it, and the
server spent about 8 us more per ``async def`` job serving it). Written together, the
replies of one pass wake each worker process once; it runs those jobs and answers them
together, which the server then reads in one pass. Measured with ``bench/worker_before_after.py``
(docs/benchmarks.md, issue 14). A lone client waits no longer than before: with nothing
else to do the loop's next pass comes at once.
"""

from __future__ import annotations

import asyncio


class Outbox:
    """Replies queued per connection writer, written together at the loop's next pass."""

    def __init__(self) -> None:
        self._pending: dict[asyncio.StreamWriter, bytes] = {}

    def put(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Queue ``data`` for ``writer`` after what is queued for it already."""
        pending = self._pending
        if not pending:
            asyncio.get_running_loop().call_soon(self.write_all)
        queued = pending.get(writer)
        pending[writer] = data if queued is None else queued + data

    def flush(self, writer: asyncio.StreamWriter) -> None:
        """Write what is queued for ``writer`` now (before it writes more, or closes)."""
        data = self._pending.pop(writer, None)
        if data is not None:
            _write(writer, data)

    def write_all(self) -> None:
        """Write every queued reply (each connection's in the order queued)."""
        pending, self._pending = self._pending, {}
        for writer, data in pending.items():
            _write(writer, data)

    def __len__(self) -> int:
        """How many connections have a reply queued."""
        return len(self._pending)


def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write unless the connection is closing (an aborted connection drops its reply)."""
    if writer.is_closing():
        return
    try:
        writer.write(data)
    except (OSError, RuntimeError):  # the transport broke meanwhile: its reader notices
        pass
