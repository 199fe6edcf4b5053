"""The contract of werk.protocol.jsonwire, whatever codec sits inside it.

Whoever swaps the codec (orjson, msgspec) keeps these passing: depth limit, no NaN or
Infinity in or out, U+FFFD for invalid UTF-8 and lone surrogates, compact UTF-8 output.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.errors import InvalidJSONError, JSONDepthError
from werk.protocol import jsonwire
from werk.protocol.jsonwire import MAX_DEPTH


def nested(depth: int) -> str:
    """A document ``depth`` levels deep: ``[[...]]`` (``depth`` 1 is ``[]``)."""
    return "[" * depth + "]" * depth


def test_depth_up_to_the_limit_is_accepted() -> None:
    assert jsonwire.depth(jsonwire.loads(nested(MAX_DEPTH))) == MAX_DEPTH
    objects = '{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH
    assert jsonwire.depth(jsonwire.loads(objects)) == MAX_DEPTH


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_depth_past_the_limit_is_refused_naming_it(depth: int) -> None:
    with pytest.raises(JSONDepthError, match=f"deeper than {MAX_DEPTH} levels"):
        jsonwire.loads(nested(depth))


def test_unclosed_deep_document_is_refused_not_a_crash() -> None:
    with pytest.raises(InvalidJSONError):
        jsonwire.loads("[" * 100_000)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '["' + "[" * 5000 + '", "\\\\", "\\"[[[", ' + nested(MAX_DEPTH - 1) + "]"
    assert isinstance(jsonwire.loads(text), list)


def test_a_custom_limit() -> None:
    assert jsonwire.loads(nested(3), max_depth=3) == [[[]]]
    with pytest.raises(JSONDepthError, match="deeper than 2 levels"):
        jsonwire.loads(nested(3), max_depth=2)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a":-Infinity}'])
def test_non_json_constants_are_refused(text: str) -> None:
    with pytest.raises(InvalidJSONError):
        jsonwire.loads(text)


def test_infinity_by_overflow_is_refused_on_the_way_out() -> None:
    value = jsonwire.loads("[1e400]")
    with pytest.raises(InvalidJSONError):
        jsonwire.dumps(value)
    with pytest.raises(InvalidJSONError):
        jsonwire.dumps({"x": math.nan})


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters() -> None:
    value = jsonwire.loads(b'{"a":"x\xffy","\\udc00":["\\ud800"],"ok":"\\ud83d\\ude00"}')
    assert value == {"a": "x\ufffdy", "\ufffd": ["\ufffd"], "ok": "\U0001f600"}


def test_dumps_is_compact_utf8_and_never_fails_on_a_surrogate() -> None:
    assert jsonwire.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert jsonwire.dumps("\ud800") == '"\ufffd"'.encode()


def test_not_json_names_the_problem() -> None:
    with pytest.raises(InvalidJSONError, match="invalid JSON"):
        jsonwire.loads(b"{")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(JSON)
def test_round_trip_through_a_strict_parser(value: object) -> None:
    try:
        data = jsonwire.dumps(value)
    except InvalidJSONError:
        return  # an infinity (a float too large): refused, never written
    strict = json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} written"))
    assert jsonwire.loads(data) == strict
    assert jsonwire.dumps(strict) == data
