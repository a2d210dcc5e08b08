"""Placement as a pure decision over a snapshot of workers."""

from __future__ import annotations

from lamina.placement import PlacementRequest, WorkerView, place


def worker(worker_id: str, zone: str = "a", free: int = 1024, **extra: object) -> WorkerView:
    return WorkerView(
        worker_id=worker_id,
        zone=zone,
        memory_capacity_mb=4096,
        memory_reserved_mb=4096 - free,
        **extra,  # type: ignore[arg-type]
    )


def test_unhealthy_draining_and_full_workers_are_rejected_with_reasons() -> None:
    workers = [
        worker("sick", healthy=False),
        worker("leaving", draining=True),
        worker("full", free=100),
    ]

    decision = place(PlacementRequest("f", 128), workers)

    assert not decision.placed
    reasons = {r.worker_id: r.reason for r in decision.rejections}
    assert reasons == {
        "sick": "unhealthy",
        "leaving": "draining",
        "full": "needs 128 MB, 100 MB free and 0 MB idle",
    }


def test_a_function_spreads_to_the_zone_where_it_has_fewest_sandboxes() -> None:
    workers = [
        worker("a1", zone="a", free=200, function_sandboxes={"f": 3}),
        worker("b1", zone="b", free=3000),
    ]

    decision = place(PlacementRequest("f", 128), workers)

    assert decision.worker_id == "b1"


def test_within_a_zone_the_fullest_worker_that_fits_is_chosen() -> None:
    workers = [worker("roomy", free=3000), worker("snug", free=256), worker("tiny", free=64)]

    decision = place(PlacementRequest("f", 128), workers)

    assert decision.worker_id == "snug"
    assert [r.worker_id for r in decision.rejections] == ["tiny"]


def test_the_decision_explains_itself() -> None:
    decision = place(PlacementRequest("f", 512), [worker("w1", free=100), worker("w2")])

    assert decision.explain() == (
        "placed on w2 (rejected w1: needs 512 MB, 100 MB free and 0 MB idle)"
    )


def test_idle_memory_counts_as_room_but_free_memory_is_preferred() -> None:
    idle_only = WorkerView("idle", "a", 1024, 1024, memory_idle_mb=512)
    free = WorkerView("free", "a", 1024, 800)

    assert place(PlacementRequest("f", 128), [idle_only, free]).worker_id == "free"
    assert place(PlacementRequest("f", 512), [idle_only, free]).worker_id == "idle"
