"""The backend's ``OPTIONS``: the keys it knows, their defaults, and what is wrong with them.

:func:`read_options` never raises: a bad value or an unknown key becomes a :class:`Problem`
with a system check id, which ``python manage.py check`` (and every management command that
runs the checks, ``werk_worker`` included) reports, and which ``enqueue`` raises as
``ImproperlyConfigured`` where no checks ran (a WSGI server). A key is refused rather than
ignored, as Werk's own configuration files refuse theirs: a misspelt ``RESERVE_FR`` would
leave the default in place without a word.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from werk.client.url import ConfigurationError, parse_url
from werk.errors import did_you_mean
from werk.job import MAX_RESERVE_FOR, MAX_RESULT_TTL  # the server's limits, refused at PUSH

DEFAULT_RESULT_TTL = 86400.0


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one option: its system check id and the message."""

    id: str
    message: str


@dataclass(frozen=True, slots=True)
class Options:
    """The backend's options, read; a bad value is left at its default and reported.

    Attributes:
        url: the Werk server (``None``: ``WERK_URL``/``FAKTORY_URL``, else localhost).
        result_ttl: seconds a finished task's result is kept.
        retry: the job's ``retry``: how often a task that raised, or whose worker died, is
            run again (0: never, negative: never, and the job kept in the dead set).
        reserve_for: the job's ``reserve_for`` in seconds (``None``: the server's 1800).
        problems: what was wrong, in the order of :data:`READERS`, unknown keys last.
    """

    url: str | None
    result_ttl: float
    retry: int
    reserve_for: int | None
    problems: tuple[Problem, ...]


def _seconds(value: Any) -> float | None:
    """A finite number (a numeric string too, as ``float`` reads it), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    """A whole number (``3``, ``3.0``, ``"3"``), else ``None``."""
    number = _seconds(value)
    return int(number) if number is not None and number.is_integer() else None


def _url(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"must be a tcp:// or tcp+tls:// URL string, not {value!r}")
    if value is not None:
        try:
            parse_url(value)
        except ConfigurationError as exc:
            raise ValueError(f"is not a server URL: {exc}") from exc
    return value


def _result_ttl(value: Any) -> float:
    seconds = _seconds(value)
    if seconds is None or not 0 < seconds <= MAX_RESULT_TTL:
        raise ValueError(
            f"must be more than 0 and at most {int(MAX_RESULT_TTL)} seconds (30 days), "
            f"not {value!r}"
        )
    return seconds


def _retry(value: Any) -> int:
    retry = _whole(value)
    if retry is None:
        raise ValueError(
            f"must be a whole number (0: no retry; -1: no retry, kept dead), not {value!r}"
        )
    return retry


def _reserve_for(value: Any) -> int | None:
    seconds = None if value is None else _whole(value)
    if value is not None and (seconds is None or not 0 < seconds <= MAX_RESERVE_FOR):
        raise ValueError(
            f"must be a whole number of seconds from 1 to {MAX_RESERVE_FOR}, not {value!r}"
        )
    return seconds


READERS: dict[str, tuple[str, Callable[[Any], Any], Any]] = {
    "URL": ("werk.E006", _url, None),
    "RESULT_TTL": ("werk.E001", _result_ttl, DEFAULT_RESULT_TTL),
    "RETRY": ("werk.E004", _retry, 0),
    "RESERVE_FOR": ("werk.E005", _reserve_for, None),
}
"""Each known key: its check id, its reader (raising ValueError with the reason) and its
default, used when the key is missing or its value is bad."""


def read_options(options: Mapping[str, Any]) -> Options:
    """Read a backend's ``OPTIONS`` (see :class:`Options`); never raises."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, (check_id, reader, default) in READERS.items():
        values[key] = default
        if key in options:
            try:
                values[key] = reader(options[key])
            except ValueError as exc:
                problems.append(Problem(check_id, f"{key} {exc}"))
    for key in options:
        if key not in READERS:
            known = ", ".join(READERS)
            text = f"unknown OPTIONS key {key!r}{did_you_mean(str(key), READERS)}; known: {known}"
            problems.append(Problem("werk.E003", text))
    return Options(
        values["URL"], values["RESULT_TTL"], values["RETRY"], values["RESERVE_FOR"], tuple(problems)
    )
