"""A client that sends faster than the server answers, or reads no reply: the server's
memory stays bounded (werk.server.connection: READ_SIZE, UNREAD_REPLIES) and nothing is lost.

Measured as the server process's peak resident memory (``VmHWM``, reset through
``/proc/<pid>/clear_refs`` just before the flood), so no sampling can miss the peak. On
Redis only: what a connection buffers does not depend on the store, and the embedded store
keeps pushed jobs in memory until they are fetched (``werk.storage.sqlite.queues.BODY_CACHE``),
which would hide it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Peer, ServerProcess, push_line
from werk.protocol.resp import Simple

pytestmark = pytest.mark.parametrize("backend", ["redis"], indirect=True)

MIB = 1024 * 1024
BOUND = 12 * MIB
"""What the flood may add to the server's peak memory: the connection's buffers (well under
1 MiB) and whatever the process allocates meanwhile; before these limits it held the flood
itself (32 MiB read ahead, or every reply to a pipelined run)."""


def memory(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory figure (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> int:
    """Reset the process's peak memory to its current resident memory; return that."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory(pid, "VmRSS")


def started(factory: Callable[..., ServerProcess]) -> tuple[ServerProcess, int]:
    """Start a server; return it and its process id."""
    server = factory()
    assert server.proc is not None
    return server, server.proc.pid


def pushes(count: int, size: int, queue: str) -> list[bytes]:
    pad = "x" * size
    return [
        push_line(f"{queue}-{index:05d}", queue=queue, args=[pad]).encode() + b"\r\n"
        for index in range(count)
    ]


def test_pipelined_pushes_wait_in_the_clients_send_not_in_the_servers_memory(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    """40 MiB of PUSHes sent at once, replies read only after the last byte: the server
    reads commands about as fast as it stores them (the rest waits in the kernel's buffers
    and the client's ``sendall``), then every job gets its ``+OK`` and is there."""
    server, pid = started(werk_server_factory)
    peer = Peer(server.host, server.port, timeout=120.0)
    assert peer.hello() == Simple("OK")
    lines = pushes(640, 64 * 1024, "flood")
    before = reset_peak(pid)
    peer.send(b"".join(lines))
    replies = [peer.reply() for _ in lines]
    grew = memory(pid, "VmHWM") - before
    assert replies == [Simple("OK")] * len(lines)
    info = peer.call("INFO")
    assert isinstance(info, bytes)
    assert json.loads(info)["faktory"]["queues"] == {"flood": len(lines)}
    assert grew < BOUND, f"the server's memory grew by {grew / MIB:.1f} MiB"


def test_replies_a_client_leaves_unread_stop_the_server_reading_its_commands(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    """320 FETCHes of 64 KiB jobs pipelined in one write (20 MiB of replies, far past what
    the kernel's socket buffers hold) and nothing read for a second: the server writes what
    fits and waits instead of answering every FETCH into its memory; then every job comes."""
    server, pid = started(werk_server_factory)
    producer = Peer(server.host, server.port, timeout=60.0)
    assert producer.hello() == Simple("OK")
    lines = pushes(320, 64 * 1024, "big")
    producer.send(b"".join(lines))
    assert [producer.reply() for _ in lines] == [Simple("OK")] * len(lines)
    consumer = Peer(server.host, server.port, timeout=60.0)
    assert consumer.hello(wid="unread-replies") == Simple("OK")
    before = reset_peak(pid)
    consumer.send(b"FETCH big\r\n" * len(lines))
    time.sleep(1.0)  # the client reads nothing meanwhile
    jobs = [consumer.reply() for _ in lines]
    grew = memory(pid, "VmHWM") - before
    fetched = sorted(json.loads(job)["jid"] for job in jobs if isinstance(job, bytes))
    assert fetched == [f"big-{index:05d}" for index in range(len(lines))]
    assert grew < BOUND, f"the server's memory grew by {grew / MIB:.1f} MiB"
