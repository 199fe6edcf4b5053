"""Server configuration: one dataclass with the defaults of Faktory's flags.

:mod:`werk.server.settings` fills a :class:`ServerConfig` from the TOML files, the
environment and the command line (in that rising order of precedence); nothing else in the
server reads flags or the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werk.ports import parse_port, split_host_port

ENVIRONMENTS = ("development", "staging", "production")
DURABILITY_MODES = ("fsync", "os")
"""What ``+OK`` to a PUSH waits for: the fsync (default), or the write reaching the OS."""
BACKEND_DURABILITY = "backend"
"""The durability shown for a store that keeps its own setting (Redis' appendfsync, ...)."""
DURABILITY_MEANING = {
    "fsync": "+OK to a PUSH after its commit is fsynced",
    "os": "+OK to a PUSH once the OS has its commit; a power loss may lose the last ones",
    BACKEND_DURABILITY: "as durable as the storage backend is configured",
}
DEFAULT_MAX_LINE = 16 * 1024 * 1024


def parse_binding(text: str, default_host: str = "localhost") -> tuple[str, int]:
    """Parse ``host:port``, ``[v6]:port`` or ``:port`` into a pair; ``localhost`` means
    127.0.0.1. Port 0 picks a free port (the port then shows in the startup line).

    Raises:
        ValueError: no port, or a port that is not a whole number 0-65535 (see
            :func:`werk.ports.parse_port`); the message quotes the binding.
    """
    host, sep, port = split_host_port(text)
    if not sep:
        raise ValueError(f"binding {text!r} must be host:port")
    try:
        number = parse_port(port, free=True)
    except ValueError as exc:
        raise ValueError(f"binding {text!r}: {exc}") from exc
    host = host or default_host
    if host == "localhost":
        host = "127.0.0.1"
    return host, number


def statsd_address(location: str) -> tuple[str, int]:
    """Parse a ``[statsd] location`` (``host:port`` or ``udp://host:port``; an empty host
    is 127.0.0.1) into the UDP address metrics are sent to.

    Raises:
        ValueError: no port, or a port that is not 1-65535.
    """
    host, sep, port = split_host_port(location.removeprefix("udp://"))
    if not sep:
        raise ValueError(f"location {location!r} must be host:port")
    try:
        return host or "127.0.0.1", parse_port(port)
    except ValueError as exc:
        raise ValueError(f"location {location!r}: {exc}") from exc


def default_config_dir(environment: str) -> Path:
    """Return the default configuration directory of an environment."""
    if environment == "development":
        return Path.home() / ".werk"
    return Path("/etc/werk")


def default_data_dir(environment: str) -> Path:
    """Return the default data directory of an environment."""
    if environment == "development":
        return Path.home() / ".werk" / "db"
    return Path("/var/lib/werk/db")


def password_from_env() -> str | None:
    """Return the password from ``WERK_PASSWORD`` or ``FAKTORY_PASSWORD``.

    A value starting with ``/`` names a file holding the password (Docker secrets).
    """
    value = os.environ.get("WERK_PASSWORD") or os.environ.get("FAKTORY_PASSWORD")
    if not value:
        return None
    if value.startswith("/"):
        return Path(value).read_text().strip()
    return value


@dataclass(slots=True)
class ServerConfig:
    """Everything a :class:`~werk.server.server.Server` needs to run."""

    binding: tuple[str, int] = ("127.0.0.1", 7419)
    web_binding: tuple[str, int] | None = ("127.0.0.1", 7420)
    data_dir: Path = field(default_factory=lambda: default_data_dir("development"))
    storage_url: str | None = None
    storage_source: str = ""
    """Where ``storage_url`` was set (``--storage``, ``[storage] url``, or the environment
    variable's name, such as ``REDIS_URL``), for the startup line; empty when unset."""
    durability: str = "fsync"
    """The embedded store's commit mode (:data:`DURABILITY_MODES`): ``fsync`` answers a
    PUSH once its commit is fsynced; ``os`` once it reached the operating system (survives a
    crash of Werk, not a power loss). Redis and PostgreSQL keep their own settings."""
    environment: str = "development"
    password: str | None = None
    web_password: str | None = None
    max_line: int = DEFAULT_MAX_LINE
    max_connections: int = 2000
    handshake_timeout: float = 2.0
    idle_timeout: float = 0.0
    """Seconds an identified connection without a ``wid`` may stay silent; 0 is off."""
    name: str = ""
    config_dir: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "info"
    log_format: str = "text"
    backup_every: float = 0.0
    """Seconds between periodic backups of the embedded store; 0 is off."""
    backup_keep: int = 24
    backup_dir: Path | None = None
    """Where periodic backups go; by default ``<data_dir>/backups``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The parsed configuration files, for features configured there (throttles, cron)."""

    @property
    def tls(self) -> bool:
        """Whether both ports speak TLS (a certificate and its key are configured)."""
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def store_url(self) -> str:
        """The storage URL: the configured one, or the SQLite store in the data directory."""
        return self.storage_url or str(self.data_dir)
