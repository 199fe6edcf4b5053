"""A raw Faktory protocol producer and consumer for the push-path benchmarks.

The push-path scenarios measure the server, not a client library: these connections
send pre-encoded command lines on a plain blocking socket and read the reply bytes with
as little Python as possible, so the same driver can face any Faktory-compatible server.
Also here: the raw write+fsync rate of a directory's disk, the yardstick the push path is
compared with, the rate of a bare SQLite commit on it, and the CPU time a process used
(from ``/proc``).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

OK = b"+OK\r\n"


class RawConnection:
    """One Faktory connection after the handshake (``HI`` / ``HELLO`` / ``+OK``).

    Args:
        port: the server's port on 127.0.0.1.
        wid: a worker id for a consumer connection (FETCH needs one); empty for a producer.
    """

    def __init__(self, port: int, wid: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.reply()  # +HI {...}
        hello: dict[str, object] = {"v": 2}
        if wid:
            hello |= {"wid": wid, "hostname": "bench", "pid": os.getpid(), "labels": []}
        self.sock.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
        if self.reply() != OK:
            raise RuntimeError("the server refused HELLO")

    def send(self, line: bytes) -> None:
        """Send one command line (with its CRLF)."""
        self.sock.sendall(line)

    def reply(self) -> bytes:
        """Read one whole RESP reply (simple, error, or bulk) and return its bytes."""
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                size = end + 2
                if self.buffer[:1] == b"$" and self.buffer[1:3] != b"-1":
                    size += int(self.buffer[1:end]) + 2
                if len(self.buffer) >= size:
                    reply, self.buffer = self.buffer[:size], self.buffer[size:]
                    return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buffer += data

    def call(self, line: bytes) -> bytes:
        """Send a line and return its reply."""
        self.sock.sendall(line)
        return self.reply()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def push_lines(n: int, queue: str = "bench", tag: str = "") -> list[bytes]:
    """Return ``n`` pre-encoded ``PUSH`` lines of no-op jobs with unique jids."""
    tag = tag or os.urandom(4).hex()
    return [
        b'PUSH {"jid":"%s%012d","jobtype":"noop","args":[],"queue":"%s"}\r\n'
        % (tag.encode(), i, queue.encode())
        for i in range(n)
    ]


def push_sequential(port: int, lines: Sequence[bytes]) -> float:
    """One connection, each PUSH waiting for its ``+OK``; return the seconds it took."""
    conn = RawConnection(port)
    try:
        started = time.perf_counter()
        for line in lines:
            if conn.call(line) != OK:
                raise RuntimeError("PUSH was refused")
        return time.perf_counter() - started
    finally:
        conn.close()


def push_concurrent(port: int, lines: Sequence[bytes], connections: int) -> float:
    """``connections`` producers, each with one PUSH in flight; return the seconds it took.

    One thread drives every socket with a selector, so the benchmark's own CPU stays small
    (the server and this driver share the machine).
    """
    conns = [RawConnection(port) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    queues = [list(lines[k::connections]) for k in range(connections)]
    try:
        started = time.perf_counter()
        for conn, todo in zip(conns, queues, strict=True):
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, (conn, todo))
            conn.sock.send(todo.pop())
        pending = connections
        while pending:
            for key, _ in selector.select():
                conn, todo = key.data
                conn.buffer += conn.sock.recv(65536)
                while conn.buffer[:5] == OK:
                    conn.buffer = conn.buffer[5:]
                    if todo:
                        conn.sock.send(todo.pop())
                    else:
                        pending -= 1
                if conn.buffer[:1] == b"-":
                    raise RuntimeError(f"PUSH was refused: {conn.buffer!r}")
        return time.perf_counter() - started
    finally:
        selector.close()
        for conn in conns:
            conn.close()


def push_to_fetch(port: int, n: int, settle: float = 0.001, queue: str = "latency") -> list[float]:
    """Time from sending a PUSH to receiving the job at a consumer blocked in FETCH.

    The consumer sends ``FETCH queue`` (a queue nothing else uses), waits ``settle``
    seconds so the FETCH is parked on the server, then the producer sends the PUSH; the
    clock stops when the job reaches the consumer. Each job is then ACKed. Returns the
    ``n`` latencies in seconds.
    """
    producer, consumer = RawConnection(port), RawConnection(port, wid=os.urandom(6).hex())
    lines = push_lines(n, queue, tag="lat")
    fetch = b"FETCH %s\r\n" % queue.encode()
    latencies: list[float] = []
    try:
        for line in lines:
            consumer.send(fetch)
            time.sleep(settle)
            started = time.perf_counter()
            producer.send(line)
            job = consumer.reply()
            latencies.append(time.perf_counter() - started)
            if producer.reply() != OK or not job.startswith(b"$"):
                raise RuntimeError(f"unexpected reply {job[:80]!r}")
            jid = json.loads(job.split(b"\r\n", 1)[1])["jid"]
            consumer.call(b'ACK {"jid":"%s"}\r\n' % jid.encode())
    finally:
        producer.close()
        consumer.close()
    return latencies


def fetch_ack(port: int, n: int) -> float:
    """FETCH and ACK ``n`` queued jobs one by one on one connection; return the seconds."""
    conn = RawConnection(port, wid=os.urandom(6).hex())
    try:
        started = time.perf_counter()
        for _ in range(n):
            job = conn.call(b"FETCH bench\r\n")
            jid = json.loads(job.split(b"\r\n", 1)[1])["jid"]
            if conn.call(b'ACK {"jid":"%s"}\r\n' % jid.encode()) != OK:
                raise RuntimeError("ACK was refused")
        return time.perf_counter() - started
    finally:
        conn.close()


def fsync_rate(directory: str | None = None, seconds: float = 1.0, size: int = 300) -> float:
    """Appends of ``size`` bytes, each followed by ``fsync``, per second on ``directory``'s
    disk (default: the temporary directory, where the benchmark servers keep their data)."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        fd = os.open(Path(tmp) / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            data = b"x" * size
            count = 0
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                os.write(fd, data)
                os.fsync(fd)
                count += 1
            return count / elapsed
        finally:
            os.close(fd)


def sqlite_commit_rate(
    directory: str | None = None, seconds: float = 1.0, size: int = 300
) -> float:
    """One-row commits per second of a bare SQLite database in WAL mode with
    ``synchronous = FULL`` (what Werk's ``fsync`` mode sets) on ``directory``'s disk: a
    ``size``-byte row each, no server around it. SQLite appends a whole page (4 KB) and a
    frame header to the WAL and fsyncs it, so this is the most a server on SQLite could
    answer from one producer, next to :func:`fsync_rate`'s bare appends."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        conn = sqlite3.connect(Path(tmp) / "commit-probe.sqlite3", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            row = (b"x" * size,)
            count = 0
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO jobs (body) VALUES (?)", row)
                conn.execute("COMMIT")
                count += 1
            return count / elapsed
        finally:
            conn.close()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process (all its threads) used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
