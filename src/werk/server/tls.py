"""The server's TLS context: one :class:`ssl.SSLContext` shared by the command and web ports.

With a certificate and key configured both ports speak TLS only (no STARTTLS, no dual
mode), minimum TLS 1.2, as Faktory does. :func:`reload_context` loads a renewed
certificate into the same context on SIGHUP, so new connections use it without a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from werk.server.config import ServerConfig
from werk.server.settings import ConfigError


def server_context(config: ServerConfig) -> ssl.SSLContext | None:
    """Return the server-side TLS context, or ``None`` when TLS is not configured.

    Raises:
        ConfigError: the certificate or key cannot be loaded.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, config.tls_cert, config.tls_key)
    return context


def reload_context(context: ssl.SSLContext, config: ServerConfig) -> None:
    """Load the configured certificate again into ``context`` (certificate rotation).

    Raises:
        ConfigError: the certificate or key cannot be loaded; the old one stays in use.
    """
    if config.tls_cert is not None and config.tls_key is not None:
        _load(context, config.tls_cert, config.tls_key)


def _load(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from exc
