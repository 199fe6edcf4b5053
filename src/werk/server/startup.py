"""What the server says when it starts, and how a failed bind explains itself.

:func:`startup_lines` is the few lines an operator reads first: version and environment,
the store, its durability mode and the jobs it holds, the configuration
files read, whether passwords and TLS are on, and both addresses with the web UI's URL;
:func:`startup_warnings` names a port open to the network without a password, and the TOML
files put beside ``conf.d`` instead of in it.
:func:`bind_error` turns a failed ``bind`` into an error that names the address and says
what to do, since Python's own (``[Errno 98] Address already in use``) names neither.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import platform
import ssl
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from werk import __version__
from werk.server.config import DURABILITY_MEANING, ServerConfig
from werk.server.settings import conf_files, unread_files
from werk.storage.base import SET_NAMES, Store


class Server(Protocol):
    """What the startup lines read of the server (a protocol: the server imports this
    module, so this module must not import the server)."""

    config: ServerConfig
    port: int
    web_port: int
    durability: str
    tls: ssl.SSLContext | None


REDIS_SCHEMES = ("redis", "rediss", "unix")
POSTGRES_SCHEMES = ("postgresql", "postgres")
BIND_HINTS = {
    errno.EADDRINUSE: "the address is already in use (another Werk or Faktory server?):"
    " stop that process or choose another {flag} host:port",
    errno.EACCES: "permission denied: ports below 1024 need root, choose another {flag}",
    errno.EADDRNOTAVAIL: "this machine has no such address: check the host part of {flag}",
}


def public_url(url: str) -> str:
    """Return a storage URL without its password, in the address or in the query
    (``redis://:secret@h`` -> ``redis://h``, ``postgresql://u:secret@h/db`` ->
    ``postgresql://u@h/db``, ``...?password=secret&x=1`` -> ``...?x=1``)."""
    parts = urlsplit(url)
    query = "&".join(
        pair for pair in parts.query.split("&") if pair and not pair.startswith("password=")
    )
    if parts.password is None and not parts.username and query == parts.query:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def store_line(server: Server) -> str:
    """``store: ...`` naming the backend, where its data lives, and what ``+OK`` to a PUSH
    means there (``durability: fsync``, ``os`` or ``backend``)."""
    config = server.config
    url = config.storage_url or ""
    meaning = DURABILITY_MEANING.get(server.durability, "")
    mode = f"; durability: {server.durability} ({meaning})"
    if config.storage_source:  # REDIS_URL set for an app must not move Werk silently
        mode = f" (from {config.storage_source}){mode}"
    scheme = urlsplit(url).scheme
    if scheme in REDIS_SCHEMES:
        return f"store: Redis at {public_url(url)}{mode}"
    if scheme in POSTGRES_SCHEMES:
        return f"store: PostgreSQL at {public_url(url)}{mode}"
    if url and "://" in url:
        return f"store: {public_url(url)}{mode}"
    return f"store: embedded SQLite, data directory {config.store_url}{mode}"


async def jobs_line(store: Store) -> str:
    """``jobs: ...``: how many jobs the store opened with, queued (all queues), in progress
    (reserved), scheduled, retries and dead (counts the store keeps or counts cheaply)."""
    queued = sum((await store.queue_sizes()).values())
    counts = [f"{queued} queued", f"{await store.working_size()} in progress"]
    counts += [f"{await store.set_size(name)} {name}" for name in SET_NAMES]
    return "jobs: " + ", ".join(counts)


def startup_lines(server: Server, jobs: str) -> list[str]:
    """Return the startup summary, one log line each (the first keeps the ``listening on
    host:port`` words that scripts and tests look for); ``jobs`` is :func:`jobs_line`."""
    config = server.config
    host = config.binding[0]
    scheme = "tcp+tls" if server.tls else "tcp"
    lines = [
        f"Werk {__version__} listening on {host}:{server.port} ({scheme}://{host}:{server.port}),"
        f" environment {config.environment}, pid {os.getpid()},"
        f" Python {platform.python_version()}",
        store_line(server),
        jobs,
    ]
    files = conf_files(config.config_dir) if config.config_dir else []
    if files:
        lines.append("configuration files read: " + ", ".join(str(path) for path in files))
    else:
        where = config.config_dir / "conf.d" if config.config_dir else "conf.d"
        lines.append(f"configuration files read: none (no {where}/*.toml)")
    lines.append(
        f"password {'on' if config.password else 'off'},"
        f" web UI password {'on' if config.web_password or config.password else 'off'},"
        f" TLS {'on' if server.tls else 'off'}"
    )
    if server.web_port and config.web_binding is not None:
        web_scheme = "https" if server.tls else "http"
        lines.append(f"Web UI on {web_scheme}://{config.web_binding[0]}:{server.web_port}/")
    else:
        lines.append("Web UI off")
    return lines


def startup_warnings(config: ServerConfig) -> list[str]:
    """Return the warnings of a start: a port open beyond this machine without a password
    (development needs none, and the sample configuration binds ``0.0.0.0``), and each
    ``*.toml`` directly in the configuration directory (only ``conf.d/*.toml`` is read, so a
    ``werk.toml`` put there, with its ``[[cron]]`` say, would be ignored without a word)."""
    warnings = []
    if not config.password and not _loopback(config.binding[0]):
        warnings.append(
            f"the work protocol listens on {config.binding[0]} without a password: anyone who"
            " reaches the port can push, fetch and delete jobs; set one (WERK_PASSWORD,"
            " [werk] password) or bind localhost"
        )
    web = config.web_binding
    if web is not None and not (config.web_password or config.password) and not _loopback(web[0]):
        warnings.append(
            f"the web UI listens on {web[0]} without a password: anyone who reaches the port"
            " can delete jobs; set one (WERK_WEB_PASSWORD, [web] password) or bind localhost"
        )
    if config.config_dir is not None:
        warnings += [
            f"{path} is not read: Werk reads only {config.config_dir / 'conf.d'}/*.toml,"
            " move it there"
            for path in unread_files(config.config_dir)
        ]
    return warnings


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BindError(OSError):
    """A port could not be bound; the message names the address (``errno`` is kept)."""

    def __str__(self) -> str:
        return str(self.strerror)


def bind_error(what: str, flag: str, host: str, port: int, exc: OSError) -> BindError:
    """Return an error for a failed bind that names ``what`` (``the work protocol``, ``the
    web UI``), the address, and a way out; ``flag`` is the option that sets the address."""
    hint = BIND_HINTS.get(exc.errno or 0, "{reason}").format(flag=flag, reason=exc.strerror)
    return BindError(exc.errno, f"{what} cannot listen on {host}:{port}: {hint}")
