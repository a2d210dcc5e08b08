"""Invoke payloads that are not UTF-8 JSON are refused in the words of Lambda's parser."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.frontend.errors import InvalidRequestContent
from lamina.frontend.payload import PREFIX, _check_exactly, check_json

LOCATION = "\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"


def refusal(payload: bytes) -> str:
    with pytest.raises(InvalidRequestContent) as caught:
        check_json(payload)
    assert caught.value.message.startswith(PREFIX)
    return caught.value.message.removeprefix(PREFIX)


@pytest.mark.parametrize("payload", [b"{}", b"null", b'"\xc3\xa9"', b'[1, {"a": "\xe2\x9c\x93"}]'])
def test_utf8_json_documents_pass(payload: bytes) -> None:
    check_json(payload)


def test_a_byte_that_cannot_start_a_value_is_an_unexpected_character() -> None:
    assert refusal(b"\xff\xfe\x00") == (
        "Unexpected character ('\xff' (code 255)): expected a valid value (JSON String, Number, "
        "Array, Object or token 'null', 'true' or 'false')" + LOCATION + "; line: 1, column: 1]"
    )


def test_a_c1_control_byte_is_named_as_a_control_character() -> None:
    assert refusal(b"[1, \x99]").startswith("Unexpected character ((CTRL-CHAR, code 153)): ")
    assert refusal(b"[1, \x99]").endswith("; line: 1, column: 5]")


def test_a_bad_byte_inside_a_string_is_invalid_utf8_after_it_was_read() -> None:
    assert refusal(b'{"k": "a\x87"}') == (
        "Invalid UTF-8 start byte 0x87" + LOCATION + "; line: 1, column: 10]"
    )


def test_lines_and_columns_count_from_the_last_newline() -> None:
    assert refusal(b'{\n  "k":\n \xfe}').endswith("; line: 3, column: 2]")


def test_a_syntax_error_names_its_line_and_column() -> None:
    assert refusal(b'{"k": }').endswith("; line: 1, column: 7]")


def test_nesting_up_to_the_maximum_is_accepted() -> None:
    check_json(b"[" * 1000 + b"]" * 1000)


def test_nesting_past_the_maximum_is_refused_in_lambdas_words() -> None:
    assert refusal(b"[" * 5000 + b"]" * 5000) == (
        "Document nesting depth (1001) exceeds the maximum allowed (1000, from "
        "`StreamReadConstraints.getMaxNestingDepth()`)" + LOCATION + "; line: 1, column: 1001]"
    )


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    check_json(b'["' + b"[" * 2000 + b'"]')


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _verdict(check: Callable[[bytes], None], payload: bytes) -> str | None:
    try:
        check(payload)
    except InvalidRequestContent as refused:
        return refused.message
    return None


@given(
    document=_JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    cut=st.integers(min_value=0, max_value=64),
    noise=st.binary(max_size=3),
)
def test_the_quick_check_accepts_and_refuses_exactly_what_the_exact_one_does(
    document: bytes, cut: int, noise: bytes
) -> None:
    for payload in (document, document[: len(document) - cut] + noise, b"NaN", b"[1e999]"):
        assert _verdict(check_json, payload) == _verdict(_check_exactly, payload)
