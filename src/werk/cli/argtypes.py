"""argparse types for the commands' numbers, queues and URLs, so a bad value is refused by
argparse naming the flag (``werk worker: error: argument -c/--concurrency: ...``, exit 2)
instead of being taken as "not given" (``-c 0`` was the default 10) or failing later far
from the flag. ``werk worker`` and Django's ``manage.py werk_worker`` share them."""

from __future__ import annotations

import argparse
import math

from werk.client.queues import parse_queue
from werk.client.url import ConfigurationError, parse_url


def positive_int(text: str) -> int:
    """A whole number of 1 or more, in ASCII digits.

    Raises:
        argparse.ArgumentTypeError: anything else, quoting the text.
    """
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return int(text)


def seconds(text: str) -> float:
    """A finite number of seconds, 0 or more.

    Raises:
        argparse.ArgumentTypeError: not a number, negative, nan or infinite.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {text!r}")
    return value


def queue_spec(text: str) -> tuple[str, int]:
    """``-q NAME[,WEIGHT]``: the name by the server's rule, a weight >= 1 (argparse then
    blames the option, not a positional argument)."""
    try:
        return parse_queue(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def server_url(text: str) -> str:
    """``--url``: checked as the client will read it (scheme, port 1-65535) at once."""
    try:
        parse_url(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text
