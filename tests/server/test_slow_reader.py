"""A client that reads its replies slowly is waited for; one that reads nothing is closed
(werk.server.connection: ``UNREAD_REPLIES``, ``WRITE_TIMEOUT``, Werk's rule)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from werk.server import connection
from werk.server.config import ServerConfig
from werk.server.server import Server

MIB = 1024 * 1024
JOB_SIZE = 12 * MIB


def reply_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError("the server closed the connection")
        line += chunk
    return line


def connect(port: int, hello: dict[str, object]) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", port))
    reply_line(sock)
    sock.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
    assert reply_line(sock) == b"+OK\r\n"
    return sock


def push_and_fetch(port: int, rate: float | None) -> list[tuple[str, object]]:
    """Push one big job, FETCH it on a worker connection and read the reply at ``rate``
    bytes/s (``None``: read nothing); then ACK it. Return what happened."""
    producer = connect(port, {"v": 2})
    job = {"jid": "big-0000000001", "jobtype": "Big", "args": ["x" * JOB_SIZE]}
    producer.sendall(b"PUSH " + json.dumps(job).encode() + b"\r\n")
    assert reply_line(producer) == b"+OK\r\n"
    worker = connect(port, {"v": 2, "wid": "w1", "hostname": "h", "pid": 1, "labels": []})
    worker.sendall(b"FETCH default\r\n")
    events: list[tuple[str, object]] = []
    try:
        if rate is None:
            time.sleep(connection.WRITE_TIMEOUT * 3)
        header = reply_line(worker)
        size, got = int(header[1:-2]) + 2, 0
        while got < size:
            chunk = worker.recv(65536)
            if not chunk:
                raise EOFError("closed in the middle of the reply")
            got += len(chunk)
            if rate is not None:
                time.sleep(len(chunk) / rate)
        events.append(("fetched", got))
        worker.sendall(b'ACK {"jid":"big-0000000001"}\r\n')
        events.append(("ack", reply_line(worker)))
    except (EOFError, ConnectionError) as exc:
        events.append(("closed", str(exc)))
    finally:
        producer.close()
        worker.close()
    return events


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(connection, "WRITE_TIMEOUT", 1.0)
    started = Server(ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path))
    await started.start()
    yield started
    await started.stop()


async def run_client(server: Server, rate: float | None) -> list[tuple[str, object]]:
    result: list[list[tuple[str, object]]] = []
    thread = threading.Thread(target=lambda: result.append(push_and_fetch(server.port, rate)))
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.05)
    return result[0]


async def test_a_worker_reading_a_big_job_slowly_is_waited_for(server: Server) -> None:
    # Given a 12 MiB job and a worker that reads its FETCH reply at 4 MiB/s, three times
    # as long as the server waits for a client that reads nothing (WRITE_TIMEOUT = 1 s)
    events = await run_client(server, rate=4 * MIB)
    # Then it gets the whole job and its ACK is answered: it was reading all along
    assert [name for name, _ in events] == ["fetched", "ack"], events
    assert isinstance(events[0][1], int) and events[0][1] > JOB_SIZE
    assert events[1][1] == b"+OK\r\n"


async def test_a_client_that_reads_nothing_is_closed(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker that reads nothing of a 12 MiB FETCH reply for three WRITE_TIMEOUTs
    caplog.set_level(logging.INFO, logger="werk.server")
    events = await run_client(server, rate=None)
    # Then the server closed it and said why
    assert events[-1][0] == "closed", events
    assert "its replies were not read for 1 s" in caplog.text
