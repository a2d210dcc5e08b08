"""A sandbox's CPU follows its memory as on Lambda: 1,769 MB is one vCPU."""

from __future__ import annotations

from lamina.sandbox.cgroups import CPU_PERIOD_US, Limits


def test_one_vcpu_worth_of_memory_gets_a_whole_period_of_cpu() -> None:
    assert Limits(1769).cpu_quota_us == CPU_PERIOD_US
    assert Limits(3538).cpu_quota_us == 2 * CPU_PERIOD_US


def test_the_smallest_function_gets_its_proportional_share_of_a_vcpu() -> None:
    assert Limits(128).cpu_quota_us == CPU_PERIOD_US * 128 // 1769


def test_a_quota_never_falls_under_the_kernels_minimum_of_one_millisecond() -> None:
    assert Limits(1).cpu_quota_us == 1000


def test_contended_cpu_is_shared_in_proportion_to_memory() -> None:
    assert Limits(1769).cpu_weight(1024) == 1024
    assert Limits(3538).cpu_weight(1024) == 2 * Limits(1769).cpu_weight(1024)
    assert Limits(1).cpu_weight(100) == 2
