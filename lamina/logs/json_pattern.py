"""CloudWatch Logs filter patterns over JSON events: `{ $.level = "ERROR" && $.n > 2 }`.

    { $.level = "ERROR" }           a string, compared exactly; `*` matches any run
    { $.user.id = 42 }              a number, compared as a number (also != < > <= >=)
    { $.items[0] != "x" }           array elements by index
    { $.flag IS TRUE }              also IS FALSE, IS NULL, NOT EXISTS
    { ($.a = 1 || $.b = 2) && $.c = 3 }

An event matches only when its whole message is a JSON object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_TOKENS = re.compile(
    r"""\s*(?:
        (?P<selector>\$(?:\.[A-Za-z0-9_\-@]+|\[\d+\])*)
      | (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\))
      | (?P<keyword>IS\s+TRUE|IS\s+FALSE|IS\s+NULL|NOT\s+EXISTS)\b
      | "(?P<string>(?:[^"\\]|\\.)*)"
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w*])
      | (?P<word>[^\s()&|=!<>"]+)
    )""",
    re.VERBOSE,
)
_MISSING = object()

Matcher = Callable[[Any], bool]
Tokens = list[tuple[str, str]]


class JsonPatternError(ValueError):
    """A JSON filter pattern that does not parse."""


def parse(text: str) -> Matcher:
    """A predicate over a decoded JSON object, from the text between the braces."""
    tokens = _tokenize(text)
    matcher, rest = _disjunction(tokens)
    if rest:
        raise JsonPatternError(f"Invalid JSON filter pattern near {rest[0][1]!r}")
    return matcher


def matches(matcher: Matcher, message: str) -> bool:
    if not message.lstrip().startswith("{"):
        return False
    try:
        document = json.loads(message)
    except ValueError:
        return False
    return isinstance(document, dict) and matcher(document)


def _tokenize(text: str) -> Tokens:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        found = _TOKENS.match(text, position)
        if found is None or found.end() == position:
            raise JsonPatternError(f"Invalid JSON filter pattern near {text[position:]!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


def _disjunction(tokens: Tokens) -> tuple[Matcher, Tokens]:
    return _chain(tokens, "||", _conjunction, _either)


def _conjunction(tokens: Tokens) -> tuple[Matcher, Tokens]:
    return _chain(tokens, "&&", _term, _both)


def _chain(
    tokens: Tokens,
    joiner: str,
    operand: Callable[[Tokens], tuple[Matcher, Tokens]],
    combine: Callable[[Matcher, Matcher], Matcher],
) -> tuple[Matcher, Tokens]:
    """Operands joined by one operator, left to right (`&&` binds tighter: it is an operand)."""
    left, tokens = operand(tokens)
    while tokens and tokens[0] == ("op", joiner):
        right, tokens = operand(tokens[1:])
        left = combine(left, right)
    return left, tokens


def _term(tokens: Tokens) -> tuple[Matcher, Tokens]:
    if not tokens:
        raise JsonPatternError("Invalid JSON filter pattern: a comparison is missing")
    if tokens[0] == ("op", "("):
        inner, rest = _disjunction(tokens[1:])
        if not rest or rest[0] != ("op", ")"):
            raise JsonPatternError("Invalid JSON filter pattern: a ')' is missing")
        return inner, rest[1:]
    if tokens[0][0] != "selector" or len(tokens) < 2:
        raise JsonPatternError(f"Invalid JSON filter pattern near {tokens[0][1]!r}")

    path = _path(tokens[0][1])
    if tokens[1][0] == "keyword":
        return _keyword(path, " ".join(tokens[1][1].split())), tokens[2:]
    if tokens[1][0] != "op" or tokens[1][1] in ("&&", "||", "(", ")") or len(tokens) < 3:
        raise JsonPatternError(f"Invalid JSON filter pattern near {tokens[1][1]!r}")
    return _comparison(path, tokens[1][1], tokens[2]), tokens[3:]


def _path(selector: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", selector):
        parts.append(int(index) if index else name)
    return parts


def _resolve(document: Any, path: list[str | int]) -> Any:
    value = document
    for part in path:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_object):
            return _MISSING
        value = value[part]
    return value


def _keyword(path: list[str | int], keyword: str) -> Matcher:
    expected = {"IS TRUE": True, "IS FALSE": False, "IS NULL": None}
    if keyword == "NOT EXISTS":
        return lambda document: _resolve(document, path) is _MISSING
    wanted = expected[keyword]
    return lambda document: _resolve(document, path) is wanted


def _comparison(path: list[str | int], op: str, operand: tuple[str, str]) -> Matcher:
    kind, text = operand
    if kind == "number":
        number = float(text)
        compare = _NUMERIC[op]
        return lambda document: _numeric(_resolve(document, path), number, compare)
    if kind not in ("string", "word") or op not in ("=", "!="):
        raise JsonPatternError(f"Invalid JSON filter pattern near {text!r}")

    value = text.replace('\\"', '"') if kind == "string" else text
    regex = re.compile("^" + ".*".join(re.escape(part) for part in value.split("*")) + "$")
    equal = op == "="

    def compare(document: Any) -> bool:
        value = _resolve(document, path)
        return value is not _MISSING and _textual(value, regex) is equal

    return compare


def _numeric(value: Any, number: float, compare: Callable[[float, float], bool]) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return compare(float(value), number)


def _textual(value: Any, regex: re.Pattern[str]) -> bool:
    if isinstance(value, dict | list):
        return False
    text = json.dumps(value) if not isinstance(value, str) else value
    return regex.match(text) is not None


def _either(left: Matcher, right: Matcher) -> Matcher:
    return lambda document: left(document) or right(document)


def _both(left: Matcher, right: Matcher) -> Matcher:
    return lambda document: left(document) and right(document)


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}
