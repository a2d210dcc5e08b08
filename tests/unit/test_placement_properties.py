"""Properties of placement over generated fleets and sequences of new sandboxes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from lamina.placement import PlacementRequest, WorkerView, place

ZONES = ["a", "b", "c"]
FUNCTIONS = ["f", "g", "h"]


@st.composite
def fleets(
    draw: st.DrawFn, capacity: st.SearchStrategy[int], reserved_share: float = 1.0
) -> list[WorkerView]:
    count = draw(st.integers(min_value=1, max_value=6))
    workers = []
    for index in range(count):
        total = draw(capacity)
        workers.append(
            WorkerView(
                worker_id=f"w{index}",
                zone=draw(st.sampled_from(ZONES)),
                memory_capacity_mb=total,
                memory_reserved_mb=draw(
                    st.integers(min_value=0, max_value=int(total * reserved_share))
                ),
                healthy=draw(st.booleans()),
                draining=draw(st.booleans()),
            )
        )
    return workers


requests = st.lists(
    st.builds(
        PlacementRequest,
        function=st.sampled_from(FUNCTIONS),
        memory_mb=st.sampled_from([128, 256, 512, 1024]),
    ),
    max_size=40,
)


def apply(workers: list[WorkerView], worker_id: str, request: PlacementRequest) -> None:
    """What assignment does with a decision: the sandbox now lives on that worker."""
    index = next(i for i, w in enumerate(workers) if w.worker_id == worker_id)
    chosen = workers[index]
    per_function = dict(chosen.function_sandboxes)
    per_function[request.function] = per_function.get(request.function, 0) + 1
    workers[index] = replace(
        chosen,
        memory_reserved_mb=chosen.memory_reserved_mb + request.memory_mb,
        sandboxes=chosen.sandboxes + 1,
        function_sandboxes=per_function,
    )


@given(fleets(st.sampled_from([512, 1024, 2048, 4096])), requests)
def test_placement_never_overfills_a_host_nor_uses_a_sick_or_draining_one(
    workers: list[WorkerView], wanted: list[PlacementRequest]
) -> None:
    for request in wanted:
        decision = place(request, workers)
        usable = [
            w for w in workers
            if w.healthy and not w.draining and w.memory_free_mb >= request.memory_mb
        ]  # fmt: skip
        assert decision.placed == bool(usable)
        if decision.worker_id is None:
            assert len(decision.rejections) == len(workers)
            continue
        chosen = next(w for w in workers if w.worker_id == decision.worker_id)
        assert chosen.healthy and not chosen.draining
        assert chosen.memory_free_mb >= request.memory_mb
        apply(workers, decision.worker_id, request)

    assert all(w.memory_reserved_mb <= w.memory_capacity_mb for w in workers)


# Every host keeps room for every request, so only health and draining limit the choice.
@given(fleets(st.just(1_000_000), reserved_share=0.5), requests)
def test_a_function_with_three_sandboxes_spans_two_zones_when_two_are_healthy(
    workers: list[WorkerView], wanted: list[PlacementRequest]
) -> None:
    usable_zones = {w.zone for w in workers if w.healthy and not w.draining}
    for request in wanted:
        decision = place(request, workers)
        if decision.worker_id is not None:
            apply(workers, decision.worker_id, request)

    if len(usable_zones) < 2:
        return
    for function in FUNCTIONS:
        zones = {w.zone for w in workers if w.function_sandboxes.get(function, 0) > 0}
        placed = sum(w.function_sandboxes.get(function, 0) for w in workers)
        if placed >= 3:
            assert len(zones) >= 2, (function, workers)


@given(fleets(st.sampled_from([1024, 2048])), requests)
def test_each_sandbox_goes_to_a_zone_where_its_function_has_fewest_sandboxes(
    workers: list[WorkerView], wanted: list[PlacementRequest]
) -> None:
    for request in wanted:
        decision = place(request, workers)
        if decision.worker_id is None:
            continue
        per_zone: dict[str, int] = {}
        for w in workers:
            per_zone[w.zone] = per_zone.get(w.zone, 0) + w.function_sandboxes.get(
                request.function, 0
            )
        rejected = {r.worker_id for r in decision.rejections}
        candidate_zones = {w.zone for w in workers if w.worker_id not in rejected}
        chosen = next(w for w in workers if w.worker_id == decision.worker_id)
        assert per_zone[chosen.zone] == min(per_zone[z] for z in candidate_zones)
        apply(workers, decision.worker_id, request)


def test_small_sandboxes_of_many_functions_fill_one_host_and_leave_the_others_empty() -> None:
    workers = [WorkerView(f"w{i}", "a", 4096, 0) for i in range(3)]

    for index in range(10):
        request = PlacementRequest(f"fn{index}", 256)
        decision = place(request, workers)
        assert decision.worker_id is not None
        apply(workers, decision.worker_id, request)

    assert sorted(w.memory_reserved_mb for w in workers) == [0, 0, 2560]
