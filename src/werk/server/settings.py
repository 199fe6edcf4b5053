"""Loading the server's configuration: built-in defaults < TOML files < environment < flags.

Every ``<config dir>/conf.d/*.toml`` is read in alphabetical order and merged as Faktory
does: arrays of tables (``[[cron]]``) concatenate across files, while a table (or key)
defined in two files is an error naming both. The whole merged document is kept in
:attr:`ServerConfig.settings` so features (cron, throttles, statsd) read their own tables.
docs/reference/configuration.md lists every key, variable and flag, and which ones SIGHUP
reloads.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from werk.errors import JSONDepthError, WerkError, did_you_mean
from werk.manager.cron import CronNameTakenError, parse_cron
from werk.manager.features import max_result_bytes
from werk.manager.throttles import parse_throttles
from werk.protocol import jsonwire
from werk.server.config import (
    DURABILITY_MODES,
    ENVIRONMENTS,
    ServerConfig,
    default_config_dir,
    default_data_dir,
    parse_binding,
    statsd_address,
)
from werk.storage import StorageURLError, check_url, scheme_of

LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
"""Faktory's names (`-l warn`), and Python's `warning` for the same level."""
INT_FIELDS = ("max_connections", "max_line", "backup_keep")
LOG_FORMATS = ("text", "json")
TLS_CERT_FILE = "public.cert.pem"
TLS_KEY_FILE = "private.key.pem"
TRUTHY = ("1", "true", "yes")

NUMBER_RULES: tuple[tuple[str, float, str], ...] = (
    ("max_connections", 1, "max_connections ([limits], --max-connections)"),
    ("max_line", 16, "max_line ([limits], --max-line)"),
    ("handshake_timeout", 0, "handshake_timeout ([limits])"),
    ("idle_timeout", 0, "idle_timeout ([limits], --idle-timeout)"),
    ("backup_every", 0, "[backup] every"),
    ("backup_keep", 1, "[backup] keep"),
)
"""The lowest value of each number setting, and where it is set, for the message."""
STRICT = ("handshake_timeout",)
"""Number settings that must be above their lowest value, not equal to it."""

RESTART_ONLY = (
    "binding",
    "web_binding",
    "data_dir",
    "storage_url",
    "durability",
    "environment",
    "config_dir",
)
"""Fields SIGHUP cannot change: they need a restart (everything else reloads live)."""

# TOML (table, key) -> ServerConfig field, with the type the value must have.
FILE_KEYS: dict[tuple[str, str], tuple[str, type | tuple[type, ...]]] = {
    ("werk", "binding"): ("binding", str),
    ("werk", "password"): ("password", str),
    ("web", "binding"): ("web_binding", str),
    ("web", "password"): ("web_password", str),
    ("storage", "url"): ("storage_url", str),
    ("storage", "dir"): ("data_dir", str),
    ("storage", "durability"): ("durability", str),
    ("tls", "cert"): ("tls_cert", str),
    ("tls", "key"): ("tls_key", str),
    ("limits", "max_connections"): ("max_connections", int),
    ("limits", "handshake_timeout"): ("handshake_timeout", (int, float)),
    ("limits", "idle_timeout"): ("idle_timeout", (int, float)),
    ("limits", "max_line"): ("max_line", int),
    ("log", "level"): ("log_level", str),
    ("log", "format"): ("log_format", str),
    ("backup", "every"): ("backup_every", (int, float)),
    ("backup", "keep"): ("backup_keep", int),
    ("backup", "dir"): ("backup_dir", str),
}

FEATURE_TABLES: dict[str, tuple[str, ...] | None] = {
    "cron": None,  # checked by werk.manager.cron.parse_cron
    "throttles": None,  # checked by werk.manager.throttles.parse_throttles
    "statsd": ("location", "namespace", "tags", "interval"),
    "results": ("max_bytes",),  # read by werk.manager.features.max_result_bytes
}
"""Tables read by features, with their keys (``None``: the feature checks them itself)."""


def _check_statsd(settings: dict[str, Any]) -> None:
    table = settings["statsd"]
    if not isinstance(table, dict):
        return
    for key in ("location", "namespace"):
        if key in table and not isinstance(table[key], str):
            raise ValueError(f"[statsd] {key} must be a string")
    if table.get("location"):
        try:
            statsd_address(table["location"])
        except ValueError as exc:
            raise ValueError(f"[statsd] {exc}") from exc
    tags = table.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError("[statsd] tags must be a list of strings")
    interval = table.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ValueError("[statsd] interval must be a positive number of seconds")


FEATURE_CHECKS: dict[str, Callable[[dict[str, Any]], object]] = {
    "cron": parse_cron,
    "throttles": parse_throttles,
    "statsd": _check_statsd,
    "results": max_result_bytes,
}
"""Each feature table's check, run on every file on its own (at start and on SIGHUP), so
that an error (a ``ValueError``) names the file it came from: ``<file>: cron entry 1
(...): ...`` counts the entries of that file."""
KNOWN_KEYS: dict[str, tuple[str, ...] | None] = {
    **{table: tuple(k for t, k in FILE_KEYS if t == table) for table, _ in FILE_KEYS},
    "faktory": tuple(k for t, k in FILE_KEYS if t == "werk"),
    **FEATURE_TABLES,
}
"""Every table a conf.d file may hold, with the keys it may hold: anything else is an
error naming the file, so a misspelt ``[storge] url`` never silently means SQLite."""

# Environment variable -> ServerConfig field (the first one set wins for a field).
ENV_KEYS: tuple[tuple[str, str], ...] = (
    ("WERK_BINDING", "binding"),
    ("WERK_WEB_BINDING", "web_binding"),
    ("WERK_WEB_PASSWORD", "web_password"),
    ("WERK_STORAGE", "storage_url"),
    ("REDIS_URL", "storage_url"),
    ("WERK_DATA_DIR", "data_dir"),
    ("WERK_DURABILITY", "durability"),
    ("WERK_LOG_LEVEL", "log_level"),
    ("WERK_LOG_FORMAT", "log_format"),
    ("WERK_MAX_CONNECTIONS", "max_connections"),
)


class ConfigError(WerkError):
    """The configuration is invalid; the message says where and why."""


def conf_files(config_dir: Path) -> list[Path]:
    """Return the files :func:`read_conf_dir` reads: ``conf.d/*.toml``, alphabetically."""
    return sorted((config_dir / "conf.d").glob("*.toml"))


def unread_files(config_dir: Path) -> list[Path]:
    """Return the ``*.toml`` files directly in ``config_dir``: Werk does not read them (as
    Faktory, it reads only ``conf.d/*.toml``), so the server warns about each."""
    return sorted(path for path in config_dir.glob("*.toml") if path.is_file())


def read_conf_dir(config_dir: Path) -> dict[str, Any]:
    """Read and merge every ``conf.d/*.toml`` of ``config_dir`` (missing: empty).

    Every file may hold every table: the one with ``[werk]`` and ``[storage]`` may hold
    ``[[cron]]`` and ``[throttles]`` too.

    Raises:
        ConfigError: a file cannot be read or is not valid TOML, holds an unknown table or key or an
            invalid entry (a bad ``[[cron]]`` entry, throttle or ``[statsd]`` value; the
            message starts with the file), two files define the same table, or two
            ``[[cron]]`` entries have the same ``name`` (naming both files).
    """
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    cron_origin: list[tuple[Path, int]] = []
    for path in conf_files(config_dir):
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        except RecursionError as exc:
            raise ConfigError(f"{path}: nested too deeply") from exc
        except OSError as exc:  # a directory named *.toml, no permission, an I/O error
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        _check_document(path, document)
        cron = document.get("cron", [])
        cron_origin += [(path, index) for index in range(1, len(cron) + 1)]
        for key, value in document.items():
            if key not in merged:
                merged[key], origin[key] = value, path
            elif isinstance(value, list) and isinstance(merged[key], list):
                merged[key] = [*merged[key], *value]
            else:
                raise ConfigError(f"[{key}] is defined in both {origin[key]} and {path}")
    _check_cron_names(merged, cron_origin)
    return merged


def _check_cron_names(merged: dict[str, Any], cron_origin: list[tuple[Path, int]]) -> None:
    """Refuse one cron ``name`` in two files, naming both (each file alone was checked)."""
    try:
        parse_cron(merged)
    except CronNameTakenError as exc:
        (first, at), (path, index) = cron_origin[exc.first - 1], cron_origin[exc.index - 1]
        raise ConfigError(
            f'{path}: cron entry {index} ("{exc.name}"): the name {exc.name!r} is taken by'
            f" cron entry {at} of {first}; a cron entry's name must be unique"
        ) from exc


def _check_document(path: Path, document: dict[str, Any]) -> None:
    """Refuse unknown tables and keys, and nesting past the JSON limit, naming the file."""
    try:
        jsonwire.check_depth(document)
    except JSONDepthError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc
    for table, value in document.items():
        if table not in KNOWN_KEYS:
            known = ", ".join(f"[{name}]" for name in KNOWN_KEYS)
            raise ConfigError(
                f"{path}: unknown table or key {table!r}{did_you_mean(table, KNOWN_KEYS)}"
                f" (known tables: {known})"
            )
        keys = KNOWN_KEYS[table]
        if keys is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}])")
        for key in value:
            if key not in keys:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in [{table}]{did_you_mean(key, keys)}"
                    f" (known: {', '.join(keys)})"
                )
    for table, check in FEATURE_CHECKS.items():
        if table in document:
            try:
                check({table: document[table]})
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from exc


def password_value(value: str) -> str:
    """Return a password, reading it from the file when ``value`` starts with ``/``."""
    if value.startswith("/"):
        try:
            return Path(value).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the password file {value}: {exc}") from exc
    return value


def _from_file(settings: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for (table, key), (name, kind) in FILE_KEYS.items():
        section = settings.get(table)
        if table == "werk" and section is None:
            section = settings.get("faktory")  # Faktory's own table name
        if not isinstance(section, dict) or key not in section:
            continue
        value = section[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"[{table}] {key} has the wrong type: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"[{table}] {key} must be a finite number: {value!r}")
        values[name] = value
        if name == "storage_url":
            values["storage_source"] = f"[{table}] {key}"
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, name in ENV_KEYS:
        if env.get(var) and name not in values:
            values[name] = env[var]
            if name == "storage_url":
                values["storage_source"] = var
    provider = env.get("REDIS_PROVIDER")
    if provider and "storage_url" not in values and env.get(provider):
        values["storage_url"] = env[provider]
        values["storage_source"] = f"{provider}, named by REDIS_PROVIDER"
    password = env.get("WERK_PASSWORD") or env.get("FAKTORY_PASSWORD")
    if password:
        values["password"] = password
    return values


def environment_of(flag: str | None, env: Mapping[str, str]) -> str:
    """Return the environment: the flag, else ``WERK_ENV``/``FAKTORY_ENV``, else development.

    Raises:
        ConfigError: the name is not development, staging or production.
    """
    name = flag or env.get("WERK_ENV") or env.get("FAKTORY_ENV") or "development"
    if name not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {name!r}: use one of {', '.join(ENVIRONMENTS)}")
    return name


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    require_password: bool = True,
) -> ServerConfig:
    """Build the :class:`ServerConfig` from defaults, files, environment and flags.

    Args:
        flags: command-line values by :class:`ServerConfig` field name; ``None`` values
            count as not given.
        env: the environment (default ``os.environ``).
        require_password: apply the staging/production password rule.

    Raises:
        ConfigError: a file, a variable or a flag is invalid, or a required password
            is missing.
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if "storage_url" in given:
        given.setdefault("storage_source", "--storage")
    environment = environment_of(given.pop("environment", None), env)
    config_dir = Path(
        given.pop("config_dir", None)
        or env.get("WERK_CONFIG_DIR")
        or default_config_dir(environment)
    ).expanduser()
    settings = read_conf_dir(config_dir)
    values = {**_from_file(settings), **_from_env(env), **given}
    if env.get("DD_DOGSTATSD_URL"):
        statsd = settings.setdefault("statsd", {})
        if isinstance(statsd, dict):
            statsd.setdefault("location", env["DD_DOGSTATSD_URL"])
            try:
                statsd_address(statsd["location"])
            except ValueError as exc:
                raise ConfigError(f"DD_DOGSTATSD_URL: {exc}") from exc
    for var, name in ENV_KEYS:
        if name in INT_FIELDS and env.get(var) and not env[var].strip().isdigit():
            raise ConfigError(f"{var}={env[var]!r}: {name} must be a whole number")
    config = _build(values, environment, config_dir, settings)
    if config.storage_url:
        _check_storage_url(config.storage_url, config.storage_source or "storage URL")
    if require_password:
        _check_password(config, env)
    return config


def _check_storage_url(url: str, source: str) -> None:
    """Refuse a storage URL that names no backend or has bad options. A plain path
    (``localhost:6379``, as a ``REDIS_URL`` is sometimes written) is refused too: taken as
    the embedded store's directory it moved the data silently.

    Raises:
        ConfigError: naming ``source`` (``REDIS_URL``, ``--storage``, ...) and the fix.
    """
    if scheme_of(url) is None:
        shown = url if "@" not in url else "***@" + url.rsplit("@", 1)[1]  # no password
        raise ConfigError(
            f"{source}: {shown!r} is not a storage URL: write redis://host:6379/0 (or"
            " rediss://, unix://) or postgresql://user@host/db; the embedded store's"
            " directory is -d, [storage] dir or WERK_DATA_DIR"
        )
    try:
        check_url(url)
    except StorageURLError as exc:
        raise ConfigError(str(exc)) from exc


def _build(
    values: dict[str, Any], environment: str, config_dir: Path, settings: dict[str, Any]
) -> ServerConfig:
    try:
        fields: dict[str, Any] = {
            "environment": environment,
            "config_dir": config_dir,
            "settings": settings,
            "data_dir": Path(values.pop("data_dir", default_data_dir(environment))).expanduser(),
        }
        fields.update(_bindings(values))
        for name in ("password", "web_password"):
            if values.get(name):
                fields[name] = password_value(values.pop(name))
        for name in INT_FIELDS:
            if name in values:
                fields[name] = int(values.pop(name))
        for name in ("handshake_timeout", "idle_timeout", "backup_every"):
            if name in values:
                fields[name] = float(values.pop(name))
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    for name in ("tls_cert", "tls_key", "backup_dir"):
        if values.get(name):
            fields[name] = (config_dir / Path(values.pop(name)).expanduser()).resolve()
    fields.update({k: v for k, v in values.items() if v is not None})
    config = ServerConfig(**fields)
    _check(config)
    return _discover_tls(config)


def _bindings(values: dict[str, Any]) -> dict[str, Any]:
    """Pop and parse ``binding`` and ``web_binding`` (``:0``, ``0`` or empty: no web UI).

    Raises:
        ValueError: a port that is not 0-65535, naming which binding.
    """
    fields: dict[str, Any] = {}
    if "binding" in values:
        fields["binding"] = parse_binding(values.pop("binding"))
    if "web_binding" in values:
        web = values.pop("web_binding")
        try:
            fields["web_binding"] = None if web in (":0", "0", "") else parse_binding(web)
        except ValueError as exc:
            raise ValueError(f"web {exc}") from exc
    return fields


def _check(config: ServerConfig) -> None:
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"log level {config.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(f"log format {config.log_format!r}: use text or json")
    if config.durability not in DURABILITY_MODES:
        raise ConfigError(f"durability {config.durability!r}: use fsync or os")
    for name, lowest, where in NUMBER_RULES:
        value = getattr(config, name)
        # not (value >= lowest) refuses nan as well, which a flag (--idle-timeout nan) or a
        # variable can carry past the files' finiteness check
        if not (value >= lowest and math.isfinite(value)) or (name in STRICT and value == 0):
            least = f"more than {lowest:g}" if name in STRICT else f"{lowest:g} or more"
            least = f"a finite number, {least}" if isinstance(value, float) else least
            raise ConfigError(f"{where} must be {least}, not {value!r}")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("[tls] needs both cert and key")
    for path in (config.tls_cert, config.tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")


def _discover_tls(config: ServerConfig) -> ServerConfig:
    """Faktory's convention: both PEM files in the config directory turn TLS on."""
    if config.tls or config.config_dir is None:
        return config
    cert, key = config.config_dir / TLS_CERT_FILE, config.config_dir / TLS_KEY_FILE
    if cert.is_file() and key.is_file():
        return dataclasses.replace(config, tls_cert=cert, tls_key=key)
    return config


def _check_password(config: ServerConfig, env: Mapping[str, str]) -> None:
    """Faktory's rule: staging and production need a password (or an explicit skip)."""
    if config.environment == "development" or config.password:
        return
    skip = env.get("WERK_SKIP_PASSWORD") or env.get("FAKTORY_SKIP_PASSWORD") or ""
    if skip.lower() in TRUTHY:
        return
    path = (config.config_dir or default_config_dir(config.environment)) / "password"
    if path.is_file():
        config.password = path.read_text().strip() or None
    if not config.password:
        raise ConfigError(
            f"werk requires a password to be set in {config.environment}: set WERK_PASSWORD,"
            f" [werk] password in conf.d, or write it to {path}"
            " (or set WERK_SKIP_PASSWORD=1 to run without one)"
        )


def reloaded(current: ServerConfig, new: ServerConfig) -> tuple[ServerConfig, list[str]]:
    """Return what SIGHUP applies: ``new`` with the restart-only fields of ``current``,
    and the names of restart-only fields that changed (to warn about)."""
    kept = {name: getattr(current, name) for name in RESTART_ONLY}
    changed = [name for name in RESTART_ONLY if getattr(new, name) != kept[name]]
    return dataclasses.replace(new, **kept), changed
