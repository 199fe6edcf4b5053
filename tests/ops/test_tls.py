"""TLS: with a certificate both ports speak TLS only (1.2+); Werk's client and
``openssl s_client`` connect, a plaintext client gets nothing."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, free_port
from tests.ops.conftest import make_certificate, write_conf
from werk.client import Client, Job


@pytest.fixture
def tls_server(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> tuple[ServerProcess, Path, int]:
    """A server with Faktory's certificate convention in its config dir, web UI on TLS."""
    cert, _ = make_certificate(config_dir)
    web_port = free_port()
    server = sqlite_server_factory(
        password="tlspass", extra_args=["-c", str(config_dir), "-w", f"127.0.0.1:{web_port}"]
    )
    return server, cert, web_port


def test_werk_client_over_tls(
    tls_server: tuple[ServerProcess, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert, _ = tls_server
    # The client trusts the system store; SSL_CERT_FILE points OpenSSL at our CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with Client(f"tcp+tls://:tlspass@127.0.0.1:{server.port}") as client:
        client.push(Job("Tls", [1], queue="tls"))
        assert client.info()["faktory"]["queues"]["tls"] == 1


def test_client_without_the_ca_is_refused(tls_server: tuple[ServerProcess, Path, int]) -> None:
    server, _, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(f"tcp+tls://:tlspass@127.0.0.1:{server.port}", connect_retries=0).info()


def test_openssl_s_client_speaks_the_protocol(tls_server: tuple[ServerProcess, Path, int]) -> None:
    server, cert, _ = tls_server
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-CAfile",
            str(cert),
            "-verify_return_error",
            "-tls1_2",
            "-crlf",
            "-ign_eof",
            "-quiet",
        ],
        input=b'HELLO {"v":2}\nEND\n',
        capture_output=True,
        timeout=20,
    )
    assert b'+HI {"v":2,"i":' in result.stdout, result.stderr
    assert b"-ERR Invalid password" in result.stdout  # TLS carried the handshake both ways


def test_tls_below_1_2_and_plaintext_are_refused(
    tls_server: tuple[ServerProcess, Path, int],
) -> None:
    server, cert, _ = tls_server
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)) as info:
            old.wrap_socket(sock, server_hostname="127.0.0.1")
        # The client did offer TLS 1.0/1.1 (it is the server that hung up or alerted).
        assert "NO_PROTOCOLS_AVAILABLE" not in str(info.value)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b'HELLO {"v":2}\r\n')
        data = sock.recv(1024)
        assert not data.startswith(b"+HI")


def test_web_ui_serves_https_with_the_same_certificate(
    tls_server: tuple[ServerProcess, Path, int],
) -> None:
    server, cert, web_port = tls_server
    deadline = time.monotonic() + 10  # ServerProcess(web=False) returns before the web UI
    while f"Web UI on https://127.0.0.1:{web_port}".encode() not in server.log:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.02)
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"https://127.0.0.1:{web_port}/health", context=context) as r:
        assert json.load(r)["server"]["connections"] == 0


def test_tls_table_paths_relative_to_the_config_dir(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    cert, _ = make_certificate(config_dir / "certs")
    write_conf(
        config_dir,
        "tls.toml",
        '[tls]\ncert = "certs/public.cert.pem"\nkey = "certs/private.key.pem"\n',
    )
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            assert sock.recv(64).startswith(b"+HI")


def test_a_line_many_times_the_read_ahead_arrives_whole_over_tls(
    tls_server: tuple[ServerProcess, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server reads a connection at most about 512 KiB ahead (werk.server.connection
    READ_SIZE): a 4 MiB PUSH over TLS still arrives whole, paused and resumed on the way,
    and comes back whole."""
    server, cert, _ = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    big = "x" * (4 * 1024 * 1024)
    with Client(f"tcp+tls://:tlspass@127.0.0.1:{server.port}") as client:
        client.push(Job("Tls", [big], queue="big"))
        fetched = client.fetch("big")
        assert fetched is not None and fetched["args"] == [big]
