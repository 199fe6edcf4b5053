"""Where the server is: parsing ``tcp://`` / ``tcp+tls://`` URLs and the environment.

The URL conventions are those of every Faktory client: ``tcp://[:password@]host:port``,
``tcp+tls://`` for TLS, and the environment variables ``WERK_URL``, ``FAKTORY_URL`` and
``FAKTORY_PROVIDER`` (the *name* of the variable holding the URL).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from werk.errors import WerkError
from werk.ports import netloc_port

DEFAULT_URL = "tcp://localhost:7419"
DEFAULT_PORT = 7419


class ConfigurationError(WerkError):
    """The server URL or the client's settings are invalid."""


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Everything needed to open a connection to one server.

    Attributes:
        host: host name or IP address.
        port: TCP port.
        tls: whether to wrap the socket in TLS (``tcp+tls://``).
        password: the server password, or ``None``.
        username: sent as ``username`` in HELLO (proxies route on it; servers ignore it).
    """

    host: str = "localhost"
    port: int = DEFAULT_PORT
    tls: bool = False
    password: str | None = None
    username: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return a default TLS context for ``tcp+tls://`` addresses, else ``None``."""
        if not self.tls:
            return None
        context = ssl.create_default_context()
        if os.environ.get("FAKTORY_DISABLE_HOSTNAME_VERIFICATION"):
            context.check_hostname = False
        return context

    def url(self) -> str:
        """Return the address as a URL, with the password masked."""
        scheme = "tcp+tls" if self.tls else "tcp"
        secret = ":***@" if self.password else ""
        return f"{scheme}://{secret}{self.host}:{self.port}"


def parse_url(url: str) -> ServerAddress:
    """Parse a ``tcp://`` or ``tcp+tls://`` URL.

    The password is percent-decoded, as the Node and Ruby clients do.

    Raises:
        ConfigurationError: the URL has no scheme (``localhost:7419``: the message shows
            the URL with ``tcp://``), the scheme is not ``tcp``/``tcp+tls``, or the port
            is invalid.
    """
    if "://" not in url:
        _, secret, where = url.rpartition("@")  # the password is not repeated
        shown = f"...@{where}" if secret else url
        raise ConfigurationError(
            f"{shown!r} is not a server URL: it needs tcp:// (or tcp+tls:// for TLS) in"
            f" front, as in tcp://{':password@' if secret else ''}{where or 'localhost:7419'}"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced [ or ] of an IPv6 host
        raise ConfigurationError(f"malformed URL {url!r}: {exc}") from exc
    if parts.scheme not in ("tcp", "tcp+tls"):
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r} in {url!r}: a server URL starts with"
            " tcp:// or tcp+tls://, as in tcp://localhost:7419"
        )
    try:
        port = netloc_port(parts.netloc) or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid port in the server URL: {exc}"
        ) from exc  # no password shown
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    return ServerAddress(
        host=parts.hostname or "localhost",
        port=port,
        tls=parts.scheme == "tcp+tls",
        password=password,
        username=username,
    )


def url_from_env(env: Mapping[str, str] | None = None) -> str:
    """Return the server URL named by the environment, or the default.

    Order: ``WERK_URL``, then ``FAKTORY_PROVIDER`` (the name of the variable holding the
    URL), then ``FAKTORY_URL``, then ``tcp://localhost:7419``.

    Raises:
        ConfigurationError: ``FAKTORY_PROVIDER`` holds a URL instead of a variable name.
    """
    env = os.environ if env is None else env
    if env.get("WERK_URL"):
        return env["WERK_URL"]
    provider = env.get("FAKTORY_PROVIDER")
    if provider:
        if ":" in provider:
            raise ConfigurationError(
                "FAKTORY_PROVIDER names the variable that holds the URL, not the URL itself"
            )
        value = env.get(provider)
        if value:
            return value
    return env.get("FAKTORY_URL") or DEFAULT_URL


def resolve(url: str | ServerAddress | None = None) -> ServerAddress:
    """Return the address for an explicit URL, or the one named by the environment."""
    if isinstance(url, ServerAddress):
        return url
    return parse_url(url if url else url_from_env())
