"""CloudWatch Logs filter patterns over unstructured text.

    ERROR                 events that contain ERROR (terms are case-sensitive)
    ERROR Exception       events that contain both
    "Task timed out"      a phrase, spaces included
    ?ERROR ?WARN          events that contain either
    ERROR -Retry          events with ERROR and without Retry
    (empty)               every event

    { $.level = "ERROR" }  events that are JSON objects with that member (`json_pattern.py`)

Space-delimited patterns (`[ip, user, ...]`) are not understood yet; they are refused rather
than matched wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from lamina.logs import json_pattern

_TOKEN = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


class PatternError(ValueError):
    """A filter pattern Lamina cannot apply."""


class Pattern(Protocol):
    def matches(self, message: str) -> bool: ...


@dataclass(frozen=True)
class JsonFilterPattern:
    matcher: json_pattern.Matcher

    def matches(self, message: str) -> bool:
        return json_pattern.matches(self.matcher, message)


@dataclass(frozen=True)
class FilterPattern:
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    excluded: tuple[str, ...] = field(default=())

    def matches(self, message: str) -> bool:
        if any(term not in message for term in self.required):
            return False
        if self.any_of and not any(term in message for term in self.any_of):
            return False
        return not any(term in message for term in self.excluded)


def parse(text: str | None) -> Pattern:
    text = (text or "").strip()
    if text.startswith("{"):
        if not text.endswith("}"):
            raise PatternError("Invalid JSON filter pattern: it must end with '}'")
        try:
            return JsonFilterPattern(json_pattern.parse(text[1:-1]))
        except json_pattern.JsonPatternError as error:
            raise PatternError(str(error)) from None
    if text.startswith("["):
        raise PatternError(
            "Lamina's filter patterns match text terms and JSON members; space-delimited "
            "patterns are not supported"
        )

    required: list[str] = []
    any_of: list[str] = []
    excluded: list[str] = []
    for match in _TOKEN.finditer(text):
        sign, quoted, bare = match.groups()
        term = quoted.replace('\\"', '"') if quoted is not None else bare
        {"": required, "?": any_of, "-": excluded}[sign].append(term)
    return FilterPattern(tuple(required), tuple(any_of), tuple(excluded))
