"""Storage URL options: each backend's table of the query options its URL may carry.

A backend names every option it accepts with a check that turns the text into the value
(or raises ``ValueError`` saying why not). :func:`parse_options` applies the table before
any store opens, so an unknown option, one given twice or a bad value is refused with one
line naming it (``redis: unknown URL option 'prefx' (known: prefix, db, ...)``) instead of
reaching a client library that fails later, or takes a typo for something else.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werk.errors import StorageError

Check = Callable[[str], Any]
"""Turns an option's text into its value; raises ``ValueError`` saying what it must be."""

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class StorageURLError(StorageError):
    """A storage URL cannot be used: its scheme, an option or a value is wrong; the message
    names which (never the password)."""


def boolean(text: str) -> bool:
    """``true``/``false``, ``yes``/``no``, ``on``/``off`` or ``1``/``0`` (any case)."""
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ValueError("must be true or false (or yes/no, on/off, 1/0)")


def whole(low: int, high: int | None = None) -> Check:
    """A check for a whole number from ``low`` (to ``high``, if given)."""

    def check(text: str) -> int:
        top = math.inf if high is None else high
        if not (text.isascii() and text.isdigit() and len(text) < 19 and low <= int(text) <= top):
            upper = " or more" if high is None else f" to {high}"
            raise ValueError(f"must be a whole number, {low}{upper}")
        return int(text)

    return check


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (text.isascii() and math.isfinite(value) and value > 0):
        raise ValueError("must be a positive number of seconds")
    return value


def choice(*names: str) -> Check:
    """A check for one of ``names`` (exactly as written)."""

    def check(text: str) -> str:
        if text not in names:
            raise ValueError(f"must be one of {', '.join(names)}")
        return text

    return check


def text(value: str) -> str:
    """Any text."""
    return value


def token(value: str) -> str:
    """Printable ASCII without spaces (a name a server will be told)."""
    if not value or not all("!" <= c <= "~" for c in value):
        raise ValueError("must be printable ASCII without spaces")
    return value


def parse_options(
    backend: str,
    query: str,
    options: Mapping[str, Check],
    listed: Iterable[str] | None = None,
    others: str = "",
) -> dict[str, Any]:
    """Check the query of a ``backend`` URL against its ``options``; return the values.

    Args:
        backend: the name the messages start with (``redis``, ``postgres``).
        query: the URL's query, without the ``?``.
        options: every option the URL may carry, with its check.
        listed: the names an error about an unknown option lists (default: all).
        others: words after those names (``, or a libpq parameter such as ...``).

    Raises:
        StorageURLError: an option is unknown, given twice, or its value is bad.
    """
    values: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in options:
            listing = list(options if listed is None else listed)
            raise StorageURLError(unknown(backend, name, list(options), listing, others))
        if name in values:
            raise StorageURLError(f"{backend}: URL option {name!r} is given twice")
        try:
            values[name] = options[name](value)
        except ValueError as exc:
            shown = "..." if "password" in name or "secret" in name else repr(value)
            raise StorageURLError(f"{backend}: bad URL option {name}={shown}: {exc}") from exc
    return values


def unknown(backend: str, name: str, known: list[str], listing: list[str], others: str = "") -> str:
    """The message for an option ``backend`` does not know, with the nearest ``known``
    name and the ``listing`` of names (``none``: the URL takes no options)."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f", did you mean {close[0]!r}?" if close else ""
    names = ", ".join(listing) or "none"
    return f"{backend}: unknown URL option {name!r}{hint} (known: {names}{others})"
