"""AWS Lambda's own answers, recorded against real AWS, as an oracle for Lamina's answers.

The recordings (see /work/shared/reference/aws-recorded/README.md) are botocore-parsed responses
in which LocalStack's snapshot tool replaced values that change from run to run by placeholders:
`<function-name:1>`, `<uuid:2>`, `<partition>`, `<location>`, the account 111111111111 and the
timestamp `date`. This module loads a recording and compares a Lamina response with it:

- `shape` reduces a response to its keys and the types of its values (and the HTTP status), so
  two shapes are equal when the responses carry the same members of the same types;
- `mismatches` also compares the values: every fixed value must be equal, and every string that
  holds placeholders must match the pattern they leave. Within one scenario (one `Bindings`) a
  numbered placeholder stands for one value only, and two numbered placeholders of the same kind
  stand for two different values, just as the snapshot tool numbered them: `<uuid:1>` then
  `<uuid:2>` means "the RevisionId changed", `<code-sha256:1>` twice means "the same code".
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from functools import cache
from typing import Any

import pytest

from tests.conftest import SHARED

RECORDED_DIR = SHARED / "reference" / "aws-recorded"
RECORDED_ACCOUNT = "111111111111"
DATE = "date"

_PLACEHOLDER = re.compile(r"<[A-Za-z0-9_.-]+(?::\d+)?>")
_NUMBERED = re.compile(r"<([A-Za-z0-9_.-]+):\d+>")
_ACCOUNT_OR_PLACEHOLDER = re.compile(rf"{_PLACEHOLDER.pattern}|{RECORDED_ACCOUNT}")

# Placeholders that stand for values other than strings on the wire.
_TYPED_PLACEHOLDERS: dict[str, type] = {"<code-size>": int}
# Placeholders the snapshot tool put by key rather than by value: within one test they stand for
# different values (the code location and size change with the code), so they bind nothing.
_FREE_PLACEHOLDERS = frozenset({"<location>", "<code-size>"})


@cache
def _snapshot(file: str) -> dict[str, Any]:
    path = RECORDED_DIR / f"{file}.snapshot.json"
    if not path.exists():
        # The recordings live beside the repository (as in CI), not inside it.
        pytest.skip(f"the responses recorded from AWS are not at {path}", allow_module_level=True)
    return json.loads(path.read_text())


def recording(test: str, label: str, file: str = "test_lambda_api") -> Any:
    """What AWS answered at step `label` of LocalStack's test `test` ("Class::method[param]")."""
    key = f"tests/aws/services/lambda_/{file}.py::{test}"
    content = _snapshot(file)[key]["recorded-content"][label]
    # LocalStack's create_lambda_function fixture wraps the CreateFunction response.
    if isinstance(content, dict) and "CreateFunctionResponse" in content:
        return content["CreateFunctionResponse"]
    return content


def shape(value: Any) -> Any:
    """The keys of `value`, recursively, with the type name of every leaf.

    ResponseMetadata is reduced to its HTTPStatusCode (the recordings emptied the headers), and a
    placeholder that stands for a number counts as that number's type.
    """
    if isinstance(value, dict):
        return {
            key: {"HTTPStatusCode": item["HTTPStatusCode"]}
            if key == "ResponseMetadata"
            else shape(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, str) and value in _TYPED_PLACEHOLDERS:
        return _TYPED_PLACEHOLDERS[value].__name__
    return type(value).__name__


class Bindings:
    """The real value each placeholder stood for, over one recorded scenario."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def bind(self, placeholder: str, value: str) -> str | None:
        """Record that `placeholder` is `value`; a description of the conflict if it cannot be."""
        if placeholder in _FREE_PLACEHOLDERS:
            return None
        known = self.values.get(placeholder)
        if known is not None:
            return None if known == value else f"{placeholder} was {known!r}, now {value!r}"
        kind = _NUMBERED.fullmatch(placeholder)
        if kind is not None:
            for other, other_value in self.values.items():
                other_kind = _NUMBERED.fullmatch(other)
                same_kind = other_kind is not None and other_kind.group(1) == kind.group(1)
                if same_kind and other_value == value:
                    return f"{placeholder} and {other} should differ but are both {value!r}"
        self.values[placeholder] = value
        return None


def mismatches(
    recorded: Any,
    actual: Any,
    bindings: Bindings | None = None,
    chosen: Collection[str] = (),
) -> list[str]:
    """Every way `actual` differs from the recorded response; empty when it matches.

    `chosen` names the dotted paths whose values the test chose differently from the recorded
    test (a runtime, say): there only the type is compared.
    """
    found: list[str] = []
    _compare(recorded, actual, "", bindings or Bindings(), frozenset(chosen), found)
    return found


def _compare(
    recorded: Any, actual: Any, path: str, bindings: Bindings, chosen: frozenset[str], out: list
) -> None:
    where = path or "(response)"
    if isinstance(recorded, dict):
        if not isinstance(actual, dict):
            out.append(f"{where}: expected an object, got {actual!r}")
            return
        for key in sorted(recorded.keys() - actual.keys()):
            out.append(f"{where}: missing key {key!r}")
        for key in sorted(actual.keys() - recorded.keys()):
            if key != "ResponseMetadata":
                out.append(f"{where}: unexpected key {key!r}")
        for key in recorded.keys() & actual.keys():
            if key == "ResponseMetadata":
                status, got = recorded[key]["HTTPStatusCode"], actual[key]["HTTPStatusCode"]
                if status != got:
                    out.append(f"HTTP status: expected {status}, got {got}")
                continue
            child = f"{path}.{key}" if path else key
            _compare(recorded[key], actual[key], child, bindings, chosen, out)
    elif isinstance(recorded, list):
        if not isinstance(actual, list) or len(actual) != len(recorded):
            out.append(f"{where}: expected {len(recorded)} items, got {actual!r}")
            return
        for index, (item, got) in enumerate(zip(recorded, actual, strict=True)):
            _compare(item, got, f"{path}[{index}]", bindings, chosen, out)
    elif isinstance(recorded, str) and recorded in _TYPED_PLACEHOLDERS:
        wanted = _TYPED_PLACEHOLDERS[recorded]
        if type(actual) is not wanted:
            out.append(f"{where}: expected a {wanted.__name__}, got {actual!r}")
    elif isinstance(recorded, str):
        if not isinstance(actual, str):
            out.append(f"{where}: expected a string, got {actual!r}")
        elif path not in chosen and recorded != DATE:
            problem = _match_text(recorded, actual, bindings)
            if problem:
                out.append(f"{where}: {problem}")
    elif type(actual) is not type(recorded) or (path not in chosen and actual != recorded):
        out.append(f"{where}: expected {recorded!r}, got {actual!r}")


def _match_text(recorded: str, actual: str, bindings: Bindings) -> str | None:
    """Match `actual` against a recorded string whose placeholders stand for any text."""
    fixed = {RECORDED_ACCOUNT: r"\d{12}"}
    return _match_template(recorded, actual, bindings, _ACCOUNT_OR_PLACEHOLDER, fixed)


def _match_template(
    recorded: str,
    actual: str,
    bindings: Bindings,
    tokens_in: re.Pattern[str],
    fixed: dict[str, str],
) -> str | None:
    """Match `actual` against `recorded`, where each token found by `tokens_in` stands for
    the regular expression `fixed` gives it, or else for any text bound in `bindings`."""
    pattern, tokens, last = [], [], 0
    for found in tokens_in.finditer(recorded):
        pattern.append(re.escape(recorded[last : found.start()]))
        token = found.group()
        if token in fixed:
            pattern.append(f"(?:{fixed[token]})")
        else:
            pattern.append("(.+?)")
            tokens.append(token)
        last = found.end()
    pattern.append(re.escape(recorded[last:]))

    match = re.fullmatch("".join(pattern), actual, re.DOTALL)
    if match is None:
        return f"{actual!r} does not match recorded {recorded!r}"
    for token, value in zip(tokens, match.groups(), strict=True):
        conflict = bindings.bind(token, value)
        if conflict:
            return conflict
    return None


# Invoke. The recordings read the Payload stream into text and parsed it where it held a JSON
# object or array; the Tail logs they split into lines, in which LocalStack's transformers put
# `<duration>` for a duration in ms, `<memory>` for megabytes and `date` for a timestamp.

_LOG_PATTERNS = {
    "<duration>": r"\d+(?:\.\d{2})?",
    "<memory>": r"\d+",
    "date": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z",
}
_LOG_TOKEN = re.compile(rf"<duration>|<memory>|(?<=\t)date(?=\t)|{_PLACEHOLDER.pattern}")


def as_recorded_invoke(response: dict[str, Any]) -> dict[str, Any]:
    """An Invoke response as the recordings hold it: Payload read, and parsed if an object."""
    answer = dict(response)
    text = answer.pop("Payload").read().decode()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    answer["Payload"] = document if isinstance(document, dict | list) else text
    return answer


def renamed(recorded: Any, old: str, new: str) -> Any:
    """The recording with `old` replaced by `new` in every string.

    For a name the recorded test wrote as it is ("doesnotexist") where a test here must use a
    name of its own.
    """
    if isinstance(recorded, dict):
        return {key: renamed(item, old, new) for key, item in recorded.items()}
    if isinstance(recorded, list):
        return [renamed(item, old, new) for item in recorded]
    return recorded.replace(old, new) if isinstance(recorded, str) else recorded


def log_mismatches(recorded: list[str], actual: list[str], bindings: Bindings) -> list[str]:
    """Every way the log lines `actual` differ from the recorded lines; empty when they match.

    Durations, memory sizes and timestamps must have the form AWS writes them in; any other
    placeholder (a request id) is bound as in `mismatches`.
    """
    if len(recorded) != len(actual):
        return [f"expected {len(recorded)} lines, got {len(actual)}: {actual!r}"]
    found = []
    for index, (line, got) in enumerate(zip(recorded, actual, strict=True)):
        problem = _match_log_line(line, got, bindings)
        if problem:
            found.append(f"line {index}: {problem}")
    return found


def _match_log_line(recorded: str, actual: str, bindings: Bindings) -> str | None:
    return _match_template(recorded, actual, bindings, _LOG_TOKEN, _LOG_PATTERNS)
