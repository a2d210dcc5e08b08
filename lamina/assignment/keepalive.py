"""Keep-alive policies: how long an idle function stays loaded, and when to load it again.

A policy sees when each invoke of a function starts and ends and answers, at the end of an
invoke, with a `Window`: unload now and load again after `prewarm_s` (0 keeps it loaded), then
keep it for `keep_alive_s`. The platform's assignment part and the trace replay in `bench/`
both drive the same policy objects, so a replayed figure is the platform's behaviour.

`HybridHistogramPolicy` follows the hybrid histogram policy of Shahrad et al., "Serverless in
the Wild" (USENIX ATC 2020): a per-function histogram of idle times in one-minute bins whose
head and tail percentiles give the pre-warm and keep-alive windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

MINUTE = 60.0


@dataclass(frozen=True)
class Window:
    prewarm_s: float  # unload at the end of the invoke and load again this much later
    keep_alive_s: float  # then keep it loaded this long


class KeepAlivePolicy(Protocol):
    name: str

    def started(self, function: str, now: float) -> None:
        """An invoke of `function` started at `now`."""

    def finished(self, function: str, now: float) -> Window:
        """An invoke of `function` ended at `now`; how to treat its idle sandbox."""

    def window(self, function: str) -> Window:
        """The window `function` would get now, without recording anything."""

    def snapshot(self) -> dict[str, Window]:
        """The window each known function would get now."""


class FixedKeepAlive:
    """Every idle sandbox stays loaded for the same time, as Lambda does."""

    def __init__(self, keep_alive_s: float = 600.0) -> None:
        self.keep_alive_s = keep_alive_s
        self.name = f"fixed-{keep_alive_s / MINUTE:g}min"
        self._seen: set[str] = set()

    def started(self, function: str, now: float) -> None:
        self._seen.add(function)

    def finished(self, function: str, now: float) -> Window:
        self._seen.add(function)
        return Window(0.0, self.keep_alive_s)

    def window(self, function: str) -> Window:
        return Window(0.0, self.keep_alive_s)

    def snapshot(self) -> dict[str, Window]:
        return {function: Window(0.0, self.keep_alive_s) for function in self._seen}


@dataclass
class _History:
    bins: list[int]  # idle times in whole minutes, up to the histogram's range
    out_of_range: int = 0
    last_end: float | None = None
    running: int = 0

    @property
    def samples(self) -> int:
        return sum(self.bins) + self.out_of_range


class HybridHistogramPolicy:
    """Learns each function's idle-time histogram and fits its windows to it.

    - Too few idle times seen, or most of them beyond the histogram's range: the fallback
      window (a fixed keep-alive), since the histogram says nothing yet.
    - A histogram with a clear pattern (bin counts' coefficient of variation above
      `cv_threshold`): pre-warm at the head percentile less a margin and keep until the tail
      percentile plus a margin.
    - A flat histogram: no pre-warm, keep until the tail percentile plus a margin.

    Shortcoming: idle times beyond the range get the fallback, not the paper's ARIMA forecast.
    """

    def __init__(
        self,
        range_min: int = 240,
        head_pct: float = 5.0,
        tail_pct: float = 99.0,
        margin: float = 0.10,
        cv_threshold: float = 2.0,
        min_samples: int = 5,
        max_out_of_range: float = 0.5,
        fallback: Window = Window(0.0, 3600.0),
    ) -> None:
        self.name = "hybrid-histogram"
        self.range_min = range_min
        self.head_pct = head_pct
        self.tail_pct = tail_pct
        self.margin = margin
        self.cv_threshold = cv_threshold
        self.min_samples = min_samples
        self.max_out_of_range = max_out_of_range
        self.fallback = fallback
        self._histories: dict[str, _History] = {}

    def started(self, function: str, now: float) -> None:
        history = self._history(function)
        # Only a start after a fully idle stretch is an idle time; overlapping invokes are not.
        if history.running == 0 and history.last_end is not None:
            self._record(history, max(0.0, now - history.last_end))
        history.running += 1

    def finished(self, function: str, now: float) -> Window:
        history = self._history(function)
        history.running = max(0, history.running - 1)
        history.last_end = now
        return self._window(history)

    def window(self, function: str) -> Window:
        history = self._histories.get(function)
        return self.fallback if history is None else self._window(history)

    def snapshot(self) -> dict[str, Window]:
        return {name: self._window(history) for name, history in self._histories.items()}

    def _history(self, function: str) -> _History:
        history = self._histories.get(function)
        if history is None:
            history = self._histories[function] = _History([0] * self.range_min)
        return history

    def _record(self, history: _History, idle_s: float) -> None:
        minute = int(idle_s // MINUTE)
        if minute >= self.range_min:
            history.out_of_range += 1
        else:
            history.bins[minute] += 1

    def _window(self, history: _History) -> Window:
        samples = history.samples
        if samples < self.min_samples:
            return self.fallback
        if history.out_of_range / samples > self.max_out_of_range:
            return self.fallback

        head = _percentile_minute(history.bins, self.head_pct)
        tail = _percentile_minute(history.bins, self.tail_pct) + 1  # the bin's upper edge
        keep_until = tail * (1 + self.margin) * MINUTE
        if _coefficient_of_variation(history.bins) <= self.cv_threshold:
            return Window(0.0, keep_until)
        prewarm = math.floor(head * (1 - self.margin)) * MINUTE
        return Window(prewarm, max(MINUTE, keep_until - prewarm))


def _percentile_minute(bins: list[int], pct: float) -> int:
    total = sum(bins)
    wanted = max(1.0, total * pct / 100.0)
    seen = 0
    for minute, count in enumerate(bins):
        seen += count
        if seen >= wanted:
            return minute
    return len(bins) - 1


def _coefficient_of_variation(bins: list[int]) -> float:
    mean = sum(bins) / len(bins)
    if mean == 0:
        return 0.0
    variance = sum((count - mean) ** 2 for count in bins) / len(bins)
    return math.sqrt(variance) / mean


def policy_named(name: str, keep_alive_s: float = 600.0) -> KeepAlivePolicy:
    """The policy `lamina up --keep-alive-policy` names: `fixed` or `hybrid`."""
    if name == "fixed":
        return FixedKeepAlive(keep_alive_s)
    if name == "hybrid":
        return HybridHistogramPolicy()
    raise ValueError(f"unknown keep-alive policy {name!r}: use fixed or hybrid")
