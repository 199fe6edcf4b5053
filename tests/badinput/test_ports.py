"""Every option that takes a port reads it one way (werk.ports): 1-65535, 0 only where it
picks a free port (a server binding), and one clear line for anything else.

The finding: ``werk server -b localhost:73219`` listened on 7683 (the socket layer wraps a
port modulo 65536) and ``-b localhost:abc`` printed ``invalid literal for int()``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.client.url import ConfigurationError
from werk.client.url import parse_url as client_url
from werk.ports import parse_port
from werk.server.config import parse_binding, statsd_address
from werk.server.settings import ConfigError, load_config
from werk.storage import StorageURLError, check_url

PORT_TEXT = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**7).map(str),
    st.text(max_size=8),
    st.sampled_from(["", " 80", "80 ", "+80", "0x50", "8_0", "٨٠", "1e3", "65536", "00080"]),
)
"""Port texts: numbers in and around the range, and text that int() would half-accept."""


def in_range(text: str, lowest: int) -> bool:
    return text.isascii() and text.isdigit() and lowest <= int(text) <= 65535


@settings(deadline=None)  # no timed assertions: a busy machine must not fail it
@given(PORT_TEXT)
def test_a_port_is_ascii_digits_in_range_or_one_clear_error(text: str) -> None:
    for free, lowest in ((False, 1), (True, 0)):
        if in_range(text, lowest):
            assert parse_port(text, free=free) == int(text)
        else:
            with pytest.raises(ValueError, match=f"port .*{lowest}-65535") as raised:
                parse_port(text, free=free)
            assert "invalid literal" not in str(raised.value)


@settings(deadline=None)
@given(PORT_TEXT, st.sampled_from(["localhost", "0.0.0.0", "[::1]", ""]))
def test_every_host_port_option_applies_the_same_rule(text: str, host: str) -> None:
    if in_range(text, 0):
        assert parse_binding(f"{host}:{text}")[1] == int(text)
    else:
        with pytest.raises(ValueError, match="0-65535"):
            parse_binding(f"{host}:{text}")
    name = host or "127.0.0.1"
    connecting: list[tuple[object, type[Exception]]] = [
        (lambda: client_url(f"tcp://{name}:{text}"), ConfigurationError),
        (lambda: statsd_address(f"{name}:{text}"), ValueError),
        (lambda: check_url(f"redis://{name}:{text}/0"), StorageURLError),
    ]
    if "/" not in text and "?" not in text and "#" not in text and "@" not in text:
        for parse, error in connecting:
            if in_range(text, 1):
                parse()  # type: ignore[operator]
            else:
                with pytest.raises(error, match="1-65535|port is missing|Invalid IPv6"):
                    parse()  # type: ignore[operator]


@pytest.mark.parametrize(
    "url", ["postgresql://h:99999/db", "postgresql://h:0/db", "postgresql:///db?port=x"]
)
def test_a_postgres_port_is_checked_before_connecting(url: str) -> None:
    with pytest.raises(StorageURLError, match="1-65535"):
        check_url(url)
    check_url("postgresql://h1:5432,h2:5433/db")  # libpq's several hosts


def test_the_statsd_location_and_its_variable_are_checked(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "s.toml").write_text('[statsd]\nlocation = "h:70000"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: \[statsd\] location 'h:70000': port"):
        load_config({"config_dir": str(tmp_path)}, env={})
    (tmp_path / "conf.d" / "s.toml").unlink()
    with pytest.raises(ConfigError, match="DD_DOGSTATSD_URL: location 'udp://h:0': port"):
        load_config({"config_dir": str(tmp_path)}, env={"DD_DOGSTATSD_URL": "udp://h:0"})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-b", "localhost:73219"], "binding 'localhost:73219': port must be a whole number"),
        (["-b", "localhost:abc"], "binding 'localhost:abc': port must be a whole number"),
        (["-b", "localhost:"], "binding 'localhost:': the port is missing"),
        (["-b", ":0", "-w", "localhost:70000"], "web binding 'localhost:70000': port"),
    ],
)
def test_werk_server_refuses_a_port_out_of_range(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "werk", "server", "-w", ":0", "-d", str(tmp_path / "d")]
        + ["-c", str(tmp_path)]
        + flags,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "invalid literal" not in result.stderr and "Traceback" not in result.stderr
