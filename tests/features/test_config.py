"""``werk server -c dir``: a bad cron entry or throttle stops the start, or a reload."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Peer, ServerProcess
from werk.protocol.resp import Simple
from werk.server.settings import ConfigError, load_config

GOOD = """
[[cron]]
  schedule = "*/5 * * * *"
  [cron.job]
    type = "Report"
"""
BAD_CRON = (
    GOOD
    + """
[[cron]]
  schedule = "61 * * * *"
  [cron.job]
    type = "Cleanup"
"""
)


def confdir(tmp_path: Path, text: str, name: str = "cron.toml") -> Path:
    confd = tmp_path / "conf" / "conf.d"
    confd.mkdir(parents=True, exist_ok=True)
    (confd / name).write_text(text)
    return tmp_path / "conf"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "cron.toml",
            BAD_CRON,
            'cron entry 2 ("Cleanup", schedule "61 * * * *"): minute: 61 is out of range 0-59',
        ),
        (
            "throttles.toml",
            "[throttles]\ntq = { concurrency = 0 }\n",
            "throttle for queue 'tq': concurrency must be a positive integer up to 2147483647,"
            " not 0",
        ),
    ],
)
def test_bad_entry_stops_the_start(tmp_path: Path, name: str, text: str, message: str) -> None:
    server = ServerProcess(tmp_path / "data", extra_args=["-c", str(confdir(tmp_path, text, name))])
    with pytest.raises(RuntimeError, match="werk server exited"):
        server.start()
    assert server.stop() == 1
    log = server.log.decode()
    assert f"cannot start: {tmp_path / 'conf' / 'conf.d' / name}: {message}" in log
    assert "Traceback" not in log


def wait_for(server: ServerProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in server.log:
        assert time.monotonic() < deadline, server.log.decode()
        time.sleep(0.05)


def test_reload_error_keeps_the_running_entries(
    tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]
) -> None:
    conf = confdir(tmp_path, GOOD)
    server = werk_server_factory(extra_args=["-c", str(conf)])
    assert server.proc is not None
    # A bad entry: the reload is refused with the entry named, the server keeps serving
    (conf / "conf.d" / "cron.toml").write_text(BAD_CRON)
    server.proc.send_signal(signal.SIGHUP)
    wait_for(server, f"reload failed, configuration unchanged: {conf / 'conf.d' / 'cron.toml'}:")
    assert 'cron entry 2 ("Cleanup", schedule "61 * * * *")' in server.log.decode()
    assert "minute: 61 is out of range 0-59" in server.log.decode()
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    # A good file again: both entries load
    (conf / "conf.d" / "cron.toml").write_text(GOOD + GOOD.replace('"*/5 * * * *"', '"0 3 * * *"'))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(server, "cron: 2 entries loaded")


def test_an_entry_error_names_the_file_it_came_from(tmp_path: Path) -> None:
    # Given two conf.d files, each with its own entries, the second one with a typo
    conf = confdir(tmp_path, GOOD, "a-reports.toml")
    confdir(tmp_path, '[[cron]]\nschedule = "*/5 * * * *"\n[cron.job]\ntyp = "X"\n', "b.toml")
    confdir(tmp_path, "[throttles]\nq = { concurrency = 1 }\n", "c.toml")
    # When the configuration is loaded
    with pytest.raises(ConfigError) as bad:
        load_config({"config_dir": str(conf)}, env={})
    # Then the error names that file and counts the entries within it
    assert str(bad.value).startswith(f"{conf / 'conf.d' / 'b.toml'}: cron entry 1 (")
    assert str(bad.value).endswith(
        "unknown [cron.job] key 'typ' (did you mean 'type'?) (known: type, queue, args,"
        " retry, reserve_for, custom, priority)"
    )
    # And a bad throttle or [statsd] value names its file too
    (conf / "conf.d" / "b.toml").unlink()
    (conf / "conf.d" / "c.toml").write_text("[throttles]\nq = { concurrency = 0 }\n")
    with pytest.raises(ConfigError, match=rf"^{conf / 'conf.d' / 'c.toml'}: throttle for queue"):
        load_config({"config_dir": str(conf)}, env={})
    (conf / "conf.d" / "c.toml").write_text("[statsd]\ninterval = 0\n")
    with pytest.raises(ConfigError, match=rf"^{conf / 'conf.d' / 'c.toml'}: \[statsd\] interval"):
        load_config({"config_dir": str(conf)}, env={})


ONE_FILE = """
[storage]
durability = "os"

[[cron]]
  schedule = "0 3 * * *"
  name = "nightly"
  [cron.job]
    type = "Cleanup"

[throttles]
pdf = { concurrency = 2, timeout = 120 }
"""


def test_one_file_holds_the_server_settings_cron_and_throttles(tmp_path: Path) -> None:
    # Given one conf.d file with server settings, a cron entry and a throttle, as the
    # sample packaging/conf.d/werk.toml has them
    conf = confdir(tmp_path, ONE_FILE, "werk.toml")
    server = ServerProcess(tmp_path / "data", web=True, extra_args=["-c", str(conf)]).start()
    try:
        # Then the server runs with all three
        assert "durability: os" in server.log.decode()
        web = f"http://127.0.0.1:{server.web_port}"
        assert "0 3 * * *" in httpx.get(f"{web}/cron/nightly", timeout=10).text
        assert "2 concurrent" in httpx.get(f"{web}/throttles", timeout=10).text
    finally:
        server.stop()


NIGHTLY = '[[cron]]\nschedule = "0 3 * * *"\nname = "nightly"\n[cron.job]\ntype = "{type}"\n'


def test_a_cron_name_in_two_files_stops_the_start_and_a_reload(tmp_path: Path) -> None:
    # Given the entry "nightly" in cron.toml, and again in werk.toml
    conf = confdir(tmp_path, NIGHTLY.format(type="Cleanup"), "cron.toml")
    confdir(tmp_path, NIGHTLY.format(type="Vacuum"), "werk.toml")
    # Then the server does not start (each would run, and share one history), and
    # the message names both files
    taken = (
        f'{conf / "conf.d" / "werk.toml"}: cron entry 1 ("nightly"): the name'
        f" 'nightly' is taken by cron entry 1 of {conf / 'conf.d' / 'cron.toml'};"
        " a cron entry's name must be unique"
    )
    refused = ServerProcess(tmp_path / "data", extra_args=["-c", str(conf)])
    with pytest.raises(RuntimeError, match="werk server exited"):
        refused.start()
    assert refused.stop() == 1
    assert f"cannot start: {taken}" in refused.log.decode()
    # And a reload that adds the second one is refused, the running entry kept
    (conf / "conf.d" / "werk.toml").unlink()
    server = ServerProcess(tmp_path / "data", extra_args=["-c", str(conf)]).start()
    try:
        assert server.proc is not None
        confdir(tmp_path, NIGHTLY.format(type="Vacuum"), "werk.toml")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(server, f"reload failed, configuration unchanged: {taken}")
    finally:
        server.kill()
    # And two entries with one name in one file are refused too
    confdir(tmp_path, NIGHTLY.format(type="Cleanup") + NIGHTLY.format(type="Vacuum"))
    with pytest.raises(ConfigError, match=r"cron entry 2 .*taken by cron entry 1;"):
        load_config({"config_dir": str(conf)}, env={})


def test_a_toml_file_beside_conf_d_is_named_at_start(tmp_path: Path) -> None:
    # Given a werk.toml put in the configuration directory itself, not in its conf.d
    conf = confdir(tmp_path, GOOD)
    (conf / "werk.toml").write_text(NIGHTLY.format(type="Cleanup"))
    # Then the server starts without it, and says so with where it belongs
    server = ServerProcess(tmp_path / "data", extra_args=["-c", str(conf)]).start()
    try:
        wait_for(server, f"{conf / 'werk.toml'} is not read: Werk reads only {conf}/conf.d/*.toml")
        [line] = [line for line in server.log.decode().splitlines() if "is not read" in line]
        assert line.startswith("W "), line  # a warning
        read = f"configuration files read: {conf / 'conf.d' / 'cron.toml'}\n"
        assert read in server.log.decode()  # and only conf.d's file
    finally:
        server.kill()


def test_throttles_are_named_at_start_and_after_a_reload(
    tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]
) -> None:
    # Given one throttled queue
    conf = confdir(tmp_path, "[throttles]\nmail = { concurrency = 2 }\n", "throttles.toml")
    server = werk_server_factory(extra_args=["-c", str(conf)])
    assert server.proc is not None
    wait_for(server, "throttles: 1 loaded (mail)")
    # When a second one is added and the server reloads, Then the log says so, as for cron
    (conf / "conf.d" / "throttles.toml").write_text(
        "[throttles]\nmail = { concurrency = 2 }\nslow = { concurrency = 1 }\n"
    )
    server.proc.send_signal(signal.SIGHUP)
    wait_for(server, "throttles: 2 loaded (mail, slow)")
