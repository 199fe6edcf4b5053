"""Configuration: conf.d merging, precedence defaults < files < environment < flags, the
staging/production password rule, and SIGHUP reloads."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Peer, ServerProcess, error_text
from tests.ops.conftest import write_conf
from werk.protocol.resp import Simple
from werk.server.settings import ConfigError, load_config, reloaded


def test_defaults_without_files(config_dir: Path) -> None:
    config = load_config({"config_dir": str(config_dir)}, env={})
    assert config.binding == ("127.0.0.1", 7419)
    assert config.web_binding == ("127.0.0.1", 7420)
    assert config.max_connections == 2000
    assert config.idle_timeout == 0 and config.backup_every == 0
    assert config.settings == {} and not config.tls


def test_files_merge_alphabetically_and_cron_arrays_concatenate(config_dir: Path) -> None:
    write_conf(
        config_dir,
        "b.toml",
        '[limits]\nmax_line = 4096\n[[cron]]\nschedule = "* * * * *"\njob = { type = "B" }\n',
    )
    write_conf(
        config_dir,
        "a.toml",
        '[faktory]\nbinding = ":7500"\n[[cron]]\nschedule = "@hourly"\njob = { type = "A" }\n',
    )
    config = load_config({"config_dir": str(config_dir)}, env={})
    assert config.binding == ("127.0.0.1", 7500)
    assert config.max_line == 4096
    assert [c["schedule"] for c in config.settings["cron"]] == ["@hourly", "* * * * *"]


def test_a_table_defined_twice_names_both_files(config_dir: Path) -> None:
    first = write_conf(config_dir, "a.toml", "[web]\npassword = 'x'\n")
    second = write_conf(config_dir, "b.toml", "[web]\nbinding = ':7421'\n")
    with pytest.raises(ConfigError) as info:
        load_config({"config_dir": str(config_dir)}, env={})
    assert str(first) in str(info.value) and str(second) in str(info.value)


def test_invalid_toml_and_wrong_types_are_errors(config_dir: Path) -> None:
    write_conf(config_dir, "a.toml", "[limits\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config({"config_dir": str(config_dir)}, env={})
    write_conf(config_dir, "a.toml", "[limits]\nmax_connections = 'many'\n")
    with pytest.raises(ConfigError, match="max_connections"):
        load_config({"config_dir": str(config_dir)}, env={})


def test_precedence_defaults_files_environment_flags(config_dir: Path) -> None:
    write_conf(
        config_dir,
        "werk.toml",
        '[werk]\nbinding = ":7501"\npassword = "file"\n[limits]\nmax_connections = 10\n'
        '[log]\nlevel = "warn"\n',
    )
    flags = {"config_dir": str(config_dir)}
    files = load_config(flags, env={})
    assert (files.binding[1], files.password, files.max_connections) == (7501, "file", 10)
    assert files.log_level == "warn"
    env = {"WERK_BINDING": ":7502", "FAKTORY_PASSWORD": "env", "WERK_MAX_CONNECTIONS": "20"}
    from_env = load_config(flags, env=env)
    assert (from_env.binding[1], from_env.password, from_env.max_connections) == (7502, "env", 20)
    assert from_env.log_level == "warn"
    given = load_config(
        {**flags, "binding": ":7503", "max_connections": 30, "log_level": "debug"}, env=env
    )
    assert (given.binding[1], given.max_connections, given.log_level) == (7503, 30, "debug")
    assert given.password == "env"


def test_password_file_and_storage_variables(config_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    env = {"WERK_PASSWORD": str(secret), "REDIS_PROVIDER": "MY_REDIS", "MY_REDIS": "redis://r:1/0"}
    config = load_config({"config_dir": str(config_dir)}, env=env)
    assert config.password == "from-file"
    assert config.storage_url == "redis://r:1/0"
    config = load_config(
        {"config_dir": str(config_dir)}, env={**env, "WERK_STORAGE": "redis://w/1"}
    )
    assert config.storage_url == "redis://w/1"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_staging_and_production_need_a_password(config_dir: Path, environment: str) -> None:
    flags = {"config_dir": str(config_dir), "environment": environment}
    with pytest.raises(ConfigError, match=f"requires a password to be set in {environment}"):
        load_config(flags, env={})
    assert load_config(flags, env={"FAKTORY_SKIP_PASSWORD": "yes"}).password is None
    assert load_config(flags, env={"WERK_PASSWORD": "s3cret"}).password == "s3cret"
    (config_dir / "password").write_text("from-config-dir\n")
    assert load_config(flags, env={}).password == "from-config-dir"


def test_tls_by_faktory_convention_and_by_table(config_dir: Path) -> None:
    (config_dir / "public.cert.pem").write_text("x")
    (config_dir / "private.key.pem").write_text("y")
    config = load_config({"config_dir": str(config_dir)}, env={})
    assert config.tls_cert == config_dir / "public.cert.pem"
    write_conf(config_dir, "tls.toml", '[tls]\ncert = "missing.pem"\nkey = "private.key.pem"\n')
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"config_dir": str(config_dir)}, env={})


def test_reload_keeps_restart_only_settings(config_dir: Path) -> None:
    old = load_config({"config_dir": str(config_dir)}, env={})
    new = load_config(
        {"config_dir": str(config_dir), "binding": ":9999"}, env={"WERK_PASSWORD": "p"}
    )
    merged, changed = reloaded(old, new)
    assert merged.binding == old.binding and merged.password == "p"
    assert changed == ["binding"]


def test_staging_without_password_fails_to_start(tmp_path: Path, config_dir: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "werk",
            "server",
            "-e",
            "staging",
            "-c",
            str(config_dir),
            "-d",
            str(tmp_path / "data"),
            "-b",
            "127.0.0.1:0",
            "-w",
            ":0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot start: werk requires a password to be set in staging" in result.stderr


def test_connection_limit_from_toml_and_flag_wins(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    write_conf(config_dir, "limits.toml", "[limits]\nmax_connections = 2\n")
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    peers = [Peer(server.host, server.port) for _ in range(3)]
    assert peers[0].hello() == Simple("OK") and peers[1].hello() == Simple("OK")
    assert peers[2].hello() == Simple("OK")  # as Faktory: the error comes after the handshake
    assert error_text(peers[2].reply()) == "ERR too many connections: 2"
    other = sqlite_server_factory(
        extra_args=["-c", str(config_dir), "--max-connections", "3"],
        env={"WERK_MAX_CONNECTIONS": "1"},
    )
    more = [Peer(other.host, other.port) for _ in range(4)]
    assert [p.hello() == Simple("OK") for p in more[:3]] == [True] * 3
    assert more[3].hello() == Simple("OK")
    assert error_text(more[3].reply()) == "ERR too many connections: 3"


def assert_the_password_changes(server: ServerProcess, change: Callable[[], object]) -> None:
    """Connect with ``old``, ``change`` the password to ``new`` and send SIGHUP: new
    connections need ``new``, and the open one keeps its session."""
    kept = Peer(server.host, server.port)
    assert kept.hello(password="old") == Simple("OK")
    change()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while b"configuration reloaded" not in server.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        error_text(Peer(server.host, server.port).hello(password="old")) == "ERR Invalid password"
    )
    assert Peer(server.host, server.port).hello(password="new") == Simple("OK")
    assert isinstance(kept.call("INFO"), bytes)  # existing connections stay


def test_sighup_reloads_the_password(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    conf = write_conf(config_dir, "werk.toml", '[werk]\npassword = "old"\n')
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    new = '[werk]\npassword = "new"\n[limits]\nidle_timeout = 0\n'
    assert_the_password_changes(server, lambda: conf.write_text(new))


@pytest.mark.parametrize("where", ["WERK_PASSWORD=/file", "<config dir>/password"])
def test_sighup_rereads_a_password_file(
    sqlite_server_factory: Callable[..., ServerProcess],
    config_dir: Path,
    tmp_path: Path,
    where: str,
) -> None:
    # docs/operations.md, "Changing the password": a password kept in a file (named by
    # WERK_PASSWORD, or the configuration directory's password file in staging and
    # production) is read again on SIGHUP
    if where == "<config dir>/password":
        secret = config_dir / "password"
        secret.write_text("old\n")
        server = sqlite_server_factory(extra_args=["-c", str(config_dir), "-e", "staging"])
    else:
        secret = tmp_path / "werk-password"
        secret.write_text("old\n")
        server = sqlite_server_factory(password=str(secret), extra_args=["-c", str(config_dir)])
    assert_the_password_changes(server, lambda: secret.write_text("new\n"))


def test_sighup_with_a_broken_file_keeps_the_old_configuration(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    conf = write_conf(config_dir, "werk.toml", '[werk]\npassword = "old"\n')
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    conf.write_text("[werk\n")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while b"reload failed" not in server.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"reload failed, configuration unchanged" in server.log
    assert Peer(server.host, server.port).hello(password="old") == Simple("OK")


def test_the_sample_configuration_loads(config_dir: Path) -> None:
    sample = Path(__file__).parents[2] / "packaging" / "conf.d" / "werk.toml"
    write_conf(config_dir, "werk.toml", sample.read_text())
    config = load_config({"config_dir": str(config_dir)}, env={})
    assert config.binding == ("0.0.0.0", 7419) and config.backup_every == 3600
    assert config.max_connections == 2000 and config.log_format == "text"


@pytest.mark.parametrize(
    ("env", "flags", "source"),
    [
        ({"REDIS_URL": "localhost:6379"}, {}, "REDIS_URL"),
        ({"REDIS_URL": "127.0.0.1:6379/13"}, {}, "REDIS_URL"),
        ({"REDIS_PROVIDER": "MY_REDIS", "MY_REDIS": "garbage"}, {}, "MY_REDIS, named by"),
        ({"WERK_STORAGE": "u:secret@db:6379"}, {}, "WERK_STORAGE"),
        ({}, {"storage_url": "some/dir"}, "--storage"),
    ],
)
def test_a_storage_url_without_a_scheme_is_refused_naming_its_source(
    tmp_path: Path, env: dict[str, str], flags: dict[str, str], source: str
) -> None:
    """A REDIS_URL written ``localhost:6379`` used to become the embedded store's directory
    (``./localhost:6379``), overriding -d, without a word."""
    with pytest.raises(ConfigError) as refused:
        load_config({"config_dir": str(tmp_path), **flags}, env=env)
    message = str(refused.value)
    assert message.startswith(source) and "is not a storage URL: write redis://" in message
    assert "secret" not in message
