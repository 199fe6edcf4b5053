"""What the server logs beyond its startup block: cron and throttles at start, wrong
passwords (rate-limited), and the jobs whose reservations the reaper took back."""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import Peer, ServerProcess
from werk.client import Client, Job
from werk.job import TEST_MIN_RESERVE_FOR_ENV
from werk.protocol.resp import Error
from werk.server.authlog import BURST, WINDOW, AuthFailureLog


def messages(server: ServerProcess) -> list[str]:
    """The log's messages, without the level letter and time stamp."""
    return [line.split(" ", 2)[2] for line in server.log.decode().splitlines()]


def test_cron_and_throttles_are_logged_after_the_banner(tmp_path: Path) -> None:
    # Given a configuration with a cron entry and a throttle
    conf = tmp_path / "conf" / "conf.d"
    conf.mkdir(parents=True)
    (conf / "a.toml").write_text(
        '[[cron]]\nschedule = "@hourly"\njob = { type = "Hourly" }\n'
        "[throttles]\nmail = { concurrency = 1 }\n"
    )
    server = ServerProcess(tmp_path / "data", extra_args=["-c", str(tmp_path / "conf")])
    server.start()
    assert server.stop() == 0
    # Then both are logged once, after the startup block, in the words a SIGHUP uses
    lines = messages(server)
    banner = next(i for i, line in enumerate(lines) if " listening on " in line)
    web = next(i for i, line in enumerate(lines) if line.startswith("Web UI "))
    assert lines[web + 1 : web + 3] == ["cron: 1 entries loaded", "throttles: 1 loaded (mail)"]
    assert banner < web
    assert sum("entries loaded" in line or "throttles:" in line for line in lines) == 2


def test_each_wrong_password_is_logged_with_the_clients_address(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", password="s3cret").start()
    try:
        # When three clients send a wrong password
        def guess(_: int) -> str:
            peer = Peer(server.host, server.port)
            address = "{}:{}".format(*peer.sock.getsockname())
            assert isinstance(peer.hello(password="wrong"), Error)
            peer.close()
            return address

        with ThreadPoolExecutor(3) as pool:
            addresses = list(pool.map(guess, range(3)))
        # And one the right one
        right = Peer(server.host, server.port)
        assert right.hello(password="s3cret") is not None
        right.close()
    finally:
        assert server.stop() == 0
    # Then there is one warning per failure, naming the client's address
    warnings = [line for line in server.log.decode().splitlines() if line.startswith("W ")]
    logged = [line.split(" ", 2)[2] for line in warnings if "wrong password" in line]
    assert sorted(logged) == sorted(
        f"wrong password from {address}: connection refused" for address in addresses
    )


def test_wrong_password_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    failures = AuthFailureLog(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "werk.server")
    # When a client guesses BURST + 5 times within a window
    for i in range(BURST + 5):
        failures.failed(f"10.0.0.1:{5000 + i}")
    # Then BURST lines are logged and the rest counted
    assert len(caplog.records) == BURST and failures.unlogged == 5
    # And the first line of the next window says how many were left out
    now[0] += WINDOW
    failures.failed("10.0.0.1:6000")
    assert caplog.records[-1].getMessage() == (
        "wrong password from 10.0.0.1:6000: connection refused"
        " (5 more wrong passwords before it were not logged)"
    )
    assert failures.unlogged == 0


def test_the_reaper_names_the_jobs_it_takes_back(tmp_path: Path) -> None:
    # Given 7 fetched jobs with 1 s reservations that nobody ACKs
    server = ServerProcess(tmp_path / "data", env={TEST_MIN_RESERVE_FOR_ENV: "1"}).start()
    try:
        with Client(server.url) as client:
            jids = [client.push(Job(f"Type{i}", reserve_for=1, retry=0)) for i in range(7)]
            assert all(client.fetch() for _ in jids)
            deadline = time.monotonic() + 10
            while client.info()["faktory"]["total_failures"] < 7:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        assert server.stop() == 0
    # Then the reaper's lines name them, "jid (jobtype)", at most 5 each, then "and N more"
    named: list[str] = []
    total = 0
    for line in messages(server):
        match = re.fullmatch(r"reaped (\d+) expired reservations: (.*?)(?: and (\d+) more)?", line)
        if match:
            count, listed, more = int(match[1]), match[2].split(", "), int(match[3] or 0)
            assert len(listed) == min(count, 5) and more == count - len(listed)
            total += count
            named += listed
    assert total == 7
    expected = {f"{jid} (Type{i})" for i, jid in enumerate(jids)}
    assert set(named) <= expected and len(named) >= 5
