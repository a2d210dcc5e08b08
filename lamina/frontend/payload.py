"""Is an invoke payload JSON? Refusals worded the way Lambda's own parser words them.

Lambda parses payloads with a streaming parser that decodes UTF-8 as it reads, so a byte that
cannot start a value is reported as an unexpected character, while a bad byte inside a token
or a string is reported as invalid UTF-8, each with the line and column it stopped at.
"""

from __future__ import annotations

import json
import sys

import orjson

from lamina.frontend.errors import InvalidRequestContent

# Lambda's parser refuses documents nested deeper than this.
MAX_NESTING = 1000
PREFIX = "Could not parse request body into json: Could not parse payload into json: "
_SOURCE = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"
_EXPECTED_VALUE = (
    "expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or "
    "'false')"
)


def check_json(payload: bytes) -> None:
    """Raise InvalidRequestContent unless `payload` is one UTF-8 JSON document."""
    # orjson validates in C what the byte-by-byte scan below would take milliseconds per
    # megabyte for; with fewer openers than the nesting limit no document can exceed it.
    # Whatever orjson refuses goes the exact way, which words the refusal as Lambda does.
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        try:
            orjson.loads(payload)
            return
        except orjson.JSONDecodeError:
            pass
    _check_exactly(payload)


def _check_exactly(payload: bytes) -> None:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        message, line, column = _encoding_problem(payload, exc.start)
        raise _refusal(message, line, column) from exc

    depth, position = _deepest(payload)
    if depth > MAX_NESTING:
        line = payload.count(b"\n", 0, position) + 1
        column = position - (payload.rfind(b"\n", 0, position) + 1) + 1
        message = (
            f"Document nesting depth ({depth}) exceeds the maximum allowed ({MAX_NESTING}, "
            "from `StreamReadConstraints.getMaxNestingDepth()`)"
        )
        raise _refusal(message, line, column)
    _allow_recursion(MAX_NESTING)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refusal(exc.msg, exc.lineno, exc.colno) from exc


def _allow_recursion(depth: int) -> None:
    # json's parser recurses once per level; Python's default limit (1000) would refuse
    # documents Lambda accepts, so leave room for the levels plus the server's own frames.
    needed = depth + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _refusal(message: str, line: int, column: int) -> InvalidRequestContent:
    return InvalidRequestContent(
        f"{PREFIX}{message}\n at {_SOURCE}; line: {line}, column: {column}]"
    )


def _encoding_problem(payload: bytes, position: int) -> tuple[str, int, int]:
    byte = payload[position]
    line = payload.count(b"\n", 0, position) + 1
    column = position - (payload.rfind(b"\n", 0, position) + 1) + 1
    if _expects_value(payload[:position]):
        return f"Unexpected character ({_describe(byte)}): {_EXPECTED_VALUE}", line, column
    # Inside a token or a string the parser has consumed the byte before it complains.
    return f"Invalid UTF-8 start byte 0x{byte:02x}", line, column + 1


def _describe(byte: int) -> str:
    if byte < 0x20 or 0x7F <= byte < 0xA0:
        return f"(CTRL-CHAR, code {byte})"
    return f"'{chr(byte)}' (code {byte})"


def _deepest(payload: bytes) -> tuple[int, int]:
    """How deep arrays and objects nest, stopping at the first level past the maximum, and
    where that level opens."""
    depth = 0
    in_string = escaped = False
    for position, byte in enumerate(payload):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            if depth > MAX_NESTING:
                return depth, position
        elif byte in b"]}":
            depth -= 1
    return 0, 0


def _expects_value(prefix: bytes) -> bool:
    """Whether a JSON value would start right after `prefix` (outside any string)."""
    in_string = escaped = False
    last = None
    for byte in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        if byte not in b" \t\r\n":
            last = byte
    return not in_string and (last is None or last in b"[,:")
