"""argparse types for the commands' numbers, so a bad value is refused by argparse naming
the flag (``werk worker: error: argument -c/--concurrency: ...``, exit 2) instead of being
taken as "not given" (``-c 0`` was the default 10) or failing later far from the flag."""

from __future__ import annotations

import argparse
import math


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
