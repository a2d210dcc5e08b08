"""CloudWatch Logs filter patterns over unstructured text.

    ERROR                 events that contain ERROR (terms are case-sensitive)
    ERROR Exception       events that contain both
    "Task timed out"      a phrase, spaces included
    ?ERROR ?WARN          events that contain either
    ERROR -Retry          events with ERROR and without Retry
    (empty)               every event

JSON patterns (`{ $.level = "ERROR" }`) and space-delimited patterns (`[ip, user, ...]`) are
not understood yet; they are refused rather than matched wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


class PatternError(ValueError):
    """A filter pattern Lamina cannot apply."""


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


def parse(text: str | None) -> FilterPattern:
    text = (text or "").strip()
    if text.startswith(("{", "[")):
        raise PatternError(
            "Lamina's filter patterns match text terms only; JSON and space-delimited "
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
