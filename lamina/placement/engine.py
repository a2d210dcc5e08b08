"""The placement decision as a chain of filters and scorers.

Filters drop workers that cannot take the sandbox and record why; scorers order the rest. The
order of scorers is the policy: first spread each function's sandboxes over availability zones,
then pack memory densely (best fit) so whole hosts stay free, then prefer the less busy worker.
Nothing here performs I/O or reads a clock: the caller passes a snapshot and acts on the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerView:
    """What placement knows of one worker at the moment of the decision."""

    worker_id: str
    zone: str
    memory_capacity_mb: int
    memory_reserved_mb: int
    healthy: bool = True
    draining: bool = False
    sandboxes: int = 0
    # Memory of idle sandboxes, which assignment may reclaim to make room.
    memory_idle_mb: int = 0
    # Live sandboxes per function on this worker, for spreading a function over zones.
    function_sandboxes: dict[str, int] = field(default_factory=dict)

    @property
    def memory_free_mb(self) -> int:
        return self.memory_capacity_mb - self.memory_reserved_mb

    @property
    def memory_available_mb(self) -> int:
        """Free memory plus what evicting every idle sandbox would give back."""
        return self.memory_free_mb + self.memory_idle_mb


@dataclass(frozen=True)
class PlacementRequest:
    function: str
    memory_mb: int


@dataclass(frozen=True)
class Rejection:
    worker_id: str
    reason: str


@dataclass(frozen=True)
class Decision:
    worker_id: str | None
    rejections: tuple[Rejection, ...]

    @property
    def placed(self) -> bool:
        return self.worker_id is not None

    def explain(self) -> str:
        reasons = "; ".join(f"{r.worker_id}: {r.reason}" for r in self.rejections)
        target = self.worker_id or "nowhere"
        return f"placed on {target}" + (f" (rejected {reasons})" if reasons else "")


Filter = Callable[[PlacementRequest, WorkerView], "str | None"]


def _healthy(request: PlacementRequest, worker: WorkerView) -> str | None:
    return None if worker.healthy else "unhealthy"


def _not_draining(request: PlacementRequest, worker: WorkerView) -> str | None:
    return "draining" if worker.draining else None


def _fits(request: PlacementRequest, worker: WorkerView) -> str | None:
    if worker.memory_available_mb >= request.memory_mb:
        return None
    return (
        f"needs {request.memory_mb} MB, {worker.memory_free_mb} MB free"
        f" and {worker.memory_idle_mb} MB idle"
    )


FILTERS: tuple[Filter, ...] = (_healthy, _not_draining, _fits)


def place(request: PlacementRequest, workers: Sequence[WorkerView]) -> Decision:
    """Pick the worker for one new sandbox of `request.function`, or say why none fits."""
    rejections: list[Rejection] = []
    candidates: list[WorkerView] = []
    for worker in workers:
        reason = next((r for f in FILTERS if (r := f(request, worker)) is not None), None)
        if reason is None:
            candidates.append(worker)
        else:
            rejections.append(Rejection(worker.worker_id, reason))

    if not candidates:
        return Decision(None, tuple(rejections))

    zone_load = _function_sandboxes_per_zone(request.function, workers)
    best = min(candidates, key=lambda w: _score(request, w, zone_load))
    return Decision(best.worker_id, tuple(rejections))


def _function_sandboxes_per_zone(function: str, workers: Sequence[WorkerView]) -> Counter[str]:
    load: Counter[str] = Counter()
    for worker in workers:
        load[worker.zone] += worker.function_sandboxes.get(function, 0)
    return load


def _score(
    request: PlacementRequest, worker: WorkerView, zone_load: Counter[str]
) -> tuple[int, bool, int, int, str]:
    # Lower is better, compared field by field: zone spread, then no eviction needed, then
    # best fit, then load.
    spread = zone_load[worker.zone]
    leftover = worker.memory_free_mb - request.memory_mb
    return (spread, leftover < 0, abs(leftover), worker.sandboxes, worker.worker_id)
