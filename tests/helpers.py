"""Test helpers: a real ``werk server`` subprocess on a free port, and a raw protocol peer."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from werk.protocol.auth import hash_password
from werk.protocol.resp import NEED_DATA, Error, Reply, ReplyReader, Simple

LISTENING = re.compile(rb"listening on [^\s:]+:(\d+)")
WEB = re.compile(rb"Web UI on http://[^\s:]+:(\d+)")


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``werk server`` as a real subprocess with its own data directory.

    The first start binds port 0 and reads the chosen port from the log; ``start`` after a
    ``stop`` or ``kill`` binds the same port and data directory again.
    """

    def __init__(
        self,
        data_dir: Path,
        password: str | None = None,
        web: bool = False,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.password = password
        self.web = web
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.host = "127.0.0.1"
        self.port = 0
        self.web_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = bytearray()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The ``tcp://`` URL of the server, with the password if one is set."""
        auth = f":{self.password}@" if self.password else ""
        return f"tcp://{auth}{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until it listens (``timeout`` seconds: generous, as the
        suite runs in parallel on two cores and a start can wait for CPU many seconds)."""
        env = {**os.environ, **self.env}
        env.pop("WERK_PASSWORD", None)
        env.pop("FAKTORY_PASSWORD", None)
        if self.password:
            env["WERK_PASSWORD"] = self.password
        web = f"{self.host}:{self.web_port}" if self.web else ":0"
        args = [sys.executable, "-m", "werk", "server", "-b", f"{self.host}:{self.port}"]
        args += ["-w", web, "-d", str(self.data_dir), "-l", "info", *self.extra_args]
        self.log = bytearray()
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, env=env)
        self._reader = threading.Thread(target=self._read_log, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log)
            if match and (not self.web or WEB.search(self.log)):
                self.port = int(match.group(1))
                web_match = WEB.search(self.log)
                if web_match:
                    self.web_port = int(web_match.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"werk server exited: {self.log.decode(errors='replace')}")
            time.sleep(0.02)
        raise RuntimeError(f"werk server did not start: {self.log.decode(errors='replace')}")

    def _read_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.log += line

    def stop(self, timeout: float = 15.0) -> int:
        """Send SIGTERM and wait for the exit; return the exit status."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """Send SIGKILL and wait for the exit."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return status


class Peer:
    """A raw protocol client: send lines, read replies, for the server's own tests.

    Every peer is closed by the ``close_peers`` fixture at the end of its test.
    """

    opened: list[Peer] = []

    def __init__(self, host: str, port: int, timeout: float = 30.0, track: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = ReplyReader()
        if track:
            Peer.opened.append(self)

    def send(self, data: bytes | str) -> None:
        """Send raw bytes (a str is encoded)."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self) -> Reply:
        """Read one reply."""
        while True:
            item = self.reader.next_reply()
            if item is not NEED_DATA:
                return item  # type: ignore[return-value]
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            self.reader.feed(data)

    def call(self, line: str | bytes) -> Reply:
        """Send one command line and return its reply."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def hello(self, password: str | None = None, **fields: Any) -> Reply:
        """Read ``+HI``, answer HELLO (hashing the password if asked), return the reply."""
        hi = self.reply()
        assert isinstance(hi, Simple) and hi.text.startswith("HI "), hi
        challenge = json.loads(hi.text[3:])
        payload: dict[str, Any] = {"v": 2, **fields}
        if "s" in challenge and password is not None:
            payload["pwdhash"] = hash_password(password, challenge["s"], challenge["i"])
        return self.call("HELLO " + json.dumps(payload))

    def closed(self, timeout: float = 5.0) -> bool:
        """Return True once the server has closed the connection (EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.reader.feed(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def error_text(reply: Reply) -> str:
    """Return the text of an error reply, failing if the reply is not an error."""
    assert isinstance(reply, Error), reply
    return reply.text


def push_line(jid: str, **fields: Any) -> str:
    """Return a PUSH line for a minimal job."""
    job = {"jid": jid, "jobtype": "Test", "args": [], **fields}
    return "PUSH " + json.dumps(job)
