"""MUTATE's ``regexp`` glob on every backend: a pathological pattern costs one search per
segment, never the backtracking that stalled the whole server (``"*" * 8 + "x"`` took 337 s
against a 90-byte job before, the web UI stalled with it; SQLite had its own copy)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import OK, info, snapshot
from tests.helpers import Peer
from werk.storage.matching import glob, glob_tokens


def backtracking(pattern: str) -> re.Pattern[bytes]:
    """The old translation (``*`` as ``.*``): right, and slow only on long patterns."""
    parts = [b".*" if token is None else token for token in glob_tokens(pattern)]
    return re.compile(b"".join(parts) + rb"\Z", re.DOTALL)


@settings(max_examples=600, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?[]^-\\c", max_size=12),
    subject=st.binary(max_size=10).map(lambda b: bytes(x % 4 + 97 for x in b))
    | st.text(alphabet="ab-]^*", max_size=10).map(str.encode),
)
def test_glob_means_what_the_backtracking_regex_meant(pattern: str, subject: bytes) -> None:
    assert glob(pattern).match(subject) == bool(backtracking(pattern).match(subject))


PATHOLOGICAL = [
    "*" * 5000 + "x",
    "*a" * 2000 + "x",
    "*?" * 2000 + "x",
    "*[a-z]*" * 1000 + "x",
    "*" + "a*" * 5000,
]


def test_pathological_globs_match_in_linear_time() -> None:
    subject = b'{"jid":"' + b"a" * 4000 + b'","args":[]}'
    for pattern in PATHOLOGICAL:
        started = time.monotonic()
        assert not glob(pattern).match(subject)
        assert time.monotonic() - started < 1.0, pattern[:20]


def test_a_pathological_mutate_filter_answers_and_acts_on_nothing(
    seeded: tuple[Peer, dict[str, Any]],
) -> None:
    peer, before = seeded
    for pattern in PATHOLOGICAL:
        for target in ("retries", "scheduled", "dead"):
            line = {"cmd": "kill", "target": target, "filter": {"regexp": pattern}}
            started = time.monotonic()
            assert peer.call("MUTATE " + json.dumps(line)) == OK
            assert time.monotonic() - started < 5.0, (pattern[:20], target)
    assert snapshot(peer) == before
    assert info(peer)["sets"]["dead"] == 1
