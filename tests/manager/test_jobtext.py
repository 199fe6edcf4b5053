"""The bounded job text of the web UI: cut_json writes json.dumps's text, only less of it,
and skim decodes a large body's small fields as jsonwire would."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.errors import InvalidJSONError
from werk.manager.jobtext import FIELD_BYTES, PREVIEW_BYTES, cut_json, skim
from werk.manager.queries import MAX_ARGS_CHARS, args_text
from werk.protocol import jsonwire

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(JSON, st.integers(min_value=0, max_value=300), st.sampled_from([None, 2]))
def test_cut_json_is_a_prefix_of_json_dumps(value: Any, limit: int, indent: int | None) -> None:
    full = json.dumps(value, indent=indent, ensure_ascii=False)
    text, cut = cut_json(value, limit, indent)
    assert text == full[:limit]
    assert cut == (len(full) > limit)


@given(st.dictionaries(st.sampled_from(["jid", "args", "custom", "queue"]), JSON))
def test_skim_of_a_small_body_decodes_it_whole(job: dict[str, Any]) -> None:
    try:
        body = jsonwire.dumps(job)
    except Exception:
        return  # an infinity: never stored
    assert skim(body) == {**jsonwire.loads(body), "skimmed": []}


def test_skim_keeps_small_fields_and_the_first_args_of_a_large_body() -> None:
    job = {"jid": "j1", "args": list(range(1_000_000)), "custom": {"blob": "x" * FIELD_BYTES}}
    job["queue"] = "after"  # fields after the large ones are still read
    body = jsonwire.dumps(job)
    started = time.perf_counter()
    skimmed = skim(body)
    assert time.perf_counter() - started < 0.5
    assert skimmed["jid"] == "j1" and skimmed["queue"] == "after"
    assert skimmed["skimmed"] == ["args"] and skimmed["custom"] == job["custom"]
    assert skimmed["args"] == list(range(len(skimmed["args"])))
    assert 0 < len(jsonwire.dumps(skimmed["args"])) <= PREVIEW_BYTES


def test_skim_shows_the_start_of_one_huge_arg_as_text() -> None:
    skimmed = skim(jsonwire.dumps({"jid": "j2", "args": [{"text": "é" * 500_000}]}))
    (arg,) = skimmed["args"]
    assert arg.startswith('{"text":"éé') and len(arg.encode()) <= PREVIEW_BYTES


@pytest.mark.parametrize("body", [b"[1]", b'{"a":1', b'{"a" 1}', b'{"a":[1}'])
def test_skim_refuses_what_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises((ValueError, InvalidJSONError)):
        skim(body + b" " * FIELD_BYTES)


def test_args_text_is_bounded_whatever_the_args() -> None:
    assert args_text([1, "two", {"a": None}]) == '1, "two", {"a": null}'
    assert args_text(["x" * 5000]) == '"' + "x" * 1023 + "…"
    many = args_text(list(range(1_000_000)))
    assert many.startswith("0, 1, 2, ") and many.endswith("…")
    assert len(many) <= MAX_ARGS_CHARS + 10
