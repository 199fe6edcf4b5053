"""Kind 7 of issue 13: a setting that is not understood stops the start, naming it.

Unsupported storage URL schemes, unknown tables and keys in conf.d, wrong value types and
non-numeric variables are errors naming the file, key or variable; none is silently taken
as something else.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from werk.server.cron import check_settings
from werk.server.settings import ConfigError, load_config
from werk.storage import BACKENDS, UnsupportedStorageError, open_store


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    (path / "conf.d").mkdir(parents=True)
    return path


def load_with(config_dir: Path, text: str, **env: str) -> None:
    (config_dir / "conf.d" / "werk.toml").write_text(text)
    load_config({"config_dir": str(config_dir)}, env=env)


@pytest.mark.parametrize(
    "url", ["postgressql://postgres@127.0.0.1:5432/test", "reddis://127.0.0.1:6379", "mysql://x"]
)
def test_an_unsupported_storage_scheme_is_refused_naming_it(url: str, config_dir: Path) -> None:
    scheme = url.split("://")[0]
    with pytest.raises(UnsupportedStorageError, match=f"{scheme}://.*redis://"):
        open_store(url)
    with pytest.raises(ConfigError, match=f"unsupported storage URL scheme {scheme}://"):
        load_config({"config_dir": str(config_dir), "storage_url": url}, env={})
    with pytest.raises(ConfigError, match=f"{scheme}://"):
        load_with(config_dir, f'[storage]\nurl = "{url}"\n')


def test_supported_schemes_and_plain_paths_still_open(tmp_path: Path) -> None:
    assert set(BACKENDS) >= {"redis", "rediss", "unix", "sqlite", "postgresql"}
    for url, where in (
        (str(tmp_path / "a"), tmp_path / "a"),
        (f"sqlite://{tmp_path / 'b'}", tmp_path / "b"),
        ("relative:dir", Path("relative:dir")),
    ):
        assert getattr(open_store(url), "directory", None) == where


def test_werk_server_does_not_start_on_an_unsupported_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "werk", "server", "-b", "127.0.0.1:0", "-w", ":0"]
        + ["--storage", "reddis://127.0.0.1:6379/0", "-d", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 1
    assert "unsupported storage URL scheme reddis://" in result.stderr
    assert not (tmp_path / "reddis:").exists()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[storge]\nurl = "redis://127.0.0.1:6379"\n', "'storge'"),
        ('[storage]\nuri = "redis://127.0.0.1:6379"\n', "'uri' in [storage]"),
        ("[limits]\nmax_conections = 5\n", "'max_conections' in [limits] (did you mean"),
        ("[result]\nmax_bytes = 5\n", "'result' (did you mean 'results'?)"),
        ("[results]\nmax_bytes = true\n", "[results] max_bytes must be a positive integer"),
        ('password = "top-level"\n', "'password'"),
        ('[statsd]\nlocation = "h:8125"\ninterval = "30"\n', "[statsd] interval"),
        ('[statsd]\ntags = "a"\n', "[statsd] tags"),
        ("[limits]\nhandshake_timeout = nan\n", "finite"),
        ("[limits]\nmax_connections = 1.5\n", "max_connections"),
        ("storage = 5\n", "storage must be a table"),
        ("[limits]\nx = " + "[" * 150 + "]" * 150 + "\n", "nested deeper than 100"),
    ],
)
def test_conf_d_mistakes_are_errors_naming_file_and_key(
    config_dir: Path, text: str, named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_with(config_dir, text)
    assert named in str(raised.value)
    if "werk.toml" not in str(raised.value):
        assert "[" in str(raised.value)  # errors from the typed keys name [table] key


def test_deep_toml_does_not_crash(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="werk.toml"):
        load_with(config_dir, "x = " + "[" * 5000 + "]" * 5000 + "\n")


def test_a_cron_job_toml_cannot_carry_into_json(config_dir: Path) -> None:
    cron = '[[cron]]\nschedule = "* * * * *"\n[cron.job]\ntype = "T"\nargs = [nan]\n'
    (config_dir / "conf.d" / "werk.toml").write_text(cron)
    with pytest.raises(ConfigError, match=r"conf\.d/werk\.toml: cron entry 1.*JSON"):
        load_config({"config_dir": str(config_dir)}, env={})
    with pytest.raises(ConfigError, match="cron entry 1.*JSON"):  # settings built in code
        job = {"type": "T", "args": [math.nan]}
        check_settings({"cron": [{"schedule": "* * * * *", "job": job}]})


def test_a_variable_that_is_not_a_number_is_named(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="WERK_MAX_CONNECTIONS='many'"):
        load_config({"config_dir": str(config_dir)}, env={"WERK_MAX_CONNECTIONS": "many"})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('timezon = "Europe/Berlin"\n', "unknown key 'timezon' (did you mean 'timezone'?)"),
        ('catch_up = "no"\n', "catch_up must be a TOML boolean, true or false"),
    ],
)
def test_werk_server_refuses_a_misspelt_cron_key(tmp_path: Path, entry: str, message: str) -> None:
    # The finding: both started ("cron: 3 entries loaded"), in UTC and with catch-up on.
    (tmp_path / "conf.d").mkdir()
    cron = f'[[cron]]\nschedule = "0 3 * * *"\n{entry}[cron.job]\ntype = "Report"\n'
    (tmp_path / "conf.d" / "cron.toml").write_text(cron)
    result = subprocess.run(
        [sys.executable, "-m", "werk", "server", "-b", "127.0.0.1:0", "-w", ":0"]
        + ["-c", str(tmp_path), "-d", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 1
    assert 'cron.toml: cron entry 1 ("Report", schedule "0 3 * * *"): ' + message in result.stderr


def test_an_unreadable_conf_d_entry_is_named(config_dir: Path) -> None:
    (config_dir / "conf.d" / "x.toml").mkdir()  # was an IsADirectoryError traceback
    with pytest.raises(ConfigError, match=r"conf\.d/x\.toml: cannot read: Is a directory"):
        load_config({"config_dir": str(config_dir)}, env={})
