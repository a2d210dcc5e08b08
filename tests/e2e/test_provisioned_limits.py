"""Provisioned concurrency against the account's limits, and when its sandboxes cannot start,
answered as AWS did."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server, create_function, key, unique_name
from tests.e2e.recorded import mismatches, recording
from tests.e2e.test_provisioned import wait_ready
from tests.e2e.test_recorded_shapes import answer, wait_updated
from tests.e2e.test_recorded_versions import HANDLER, RUNTIME, Scenario, create, wait_active


class InvokeScenario(Scenario):
    """The steps of a recorded test from the invoke tests' snapshot."""

    def record(self, label: str, response: dict[str, Any], old: str = "", new: str = "") -> None:
        recorded = recording(self.test, label, file="test_lambda")
        self.differences[label] = mismatches(recorded, response, self.bindings, RUNTIME)


def unreserved(lam: Any) -> int:
    return int(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"])


def published(lam: Any, prefix: str) -> str:
    name = unique_name(prefix)
    create(lam, name, **HANDLER)
    wait_active(lam, name)
    lam.publish_version(FunctionName=name)
    return name


def test_provisioned_concurrency_shrinks_the_unreserved_pool_and_respects_its_minimum(
    server: Server,
) -> None:
    lam: Any = server.client()
    name = published(lam, "provisioned-pool")
    put = lam.put_provisioned_concurrency_config
    before = unreserved(lam)
    run = Scenario("TestLambdaProvisionedConcurrency::test_provisioned_concurrency_limits")

    run.record(
        "put_provisioned_concurrency_account_limit_exceeded",
        answer(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=before + 1),
    )
    run.record(
        "put_provisioned_concurrency_below_unreserved_min_value",
        answer(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=before - 99),
    )
    put(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    during = unreserved(lam)
    counted = server.state()["counting"]["provisioned"].get(key(name))
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    after = unreserved(lam)

    assert {label: found for label, found in run.differences.items() if found} == {}
    assert (during, after) == (before - 2, before)
    assert counted == {"1": 2}


def test_provisioned_concurrency_inside_a_reservation_answers_as_aws_did(server: Server) -> None:
    lam: Any = server.client()
    name = published(lam, "provisioned-reserved")
    # A second version, for a second configuration.
    lam.update_function_configuration(FunctionName=name, Timeout=15)
    wait_updated(lam, name)
    lam.publish_version(FunctionName=name)
    put = lam.put_provisioned_concurrency_config
    before = unreserved(lam)
    run = InvokeScenario("TestLambdaConcurrency::test_reserved_provisioned_overlap")

    run.record(
        "put_provisioned_5",
        put(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2),
    )
    run.record("get_provisioned_postwait", wait_ready(lam, name, "1"))
    run.record(
        "reserved_lower_than_provisioned_exc",
        answer(lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=1),
    )
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    run.record("get_concurrency", lam.get_function_concurrency(FunctionName=name))
    run.record(
        "reserved_equals_provisioned_latest_invoke_exc", answer(lam.invoke, FunctionName=name)
    )
    served = lam.invoke(FunctionName=name, Qualifier="1")
    run.record(
        "reserved_equals_provisioned_another_provisioned_exc",
        answer(put, FunctionName=name, Qualifier="2", ProvisionedConcurrentExecutions=1),
    )
    run.record(
        "reserved_equals_provisioned_increase_provisioned_exc",
        answer(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=3),
    )
    # Inside the reservation, the provisioned executions take nothing more from the pool.
    reserved = unreserved(lam)
    lam.delete_function_concurrency(FunctionName=name)
    outside = unreserved(lam)
    lam.delete_function(FunctionName=name)

    assert {label: found for label, found in run.differences.items() if found} == {}
    assert served["StatusCode"] == 200
    assert (reserved, outside, unreserved(lam)) == (before - 2, before - 2, before)


def test_a_configuration_whose_init_fails_is_failed_with_lambdas_reason(lam: Any) -> None:
    code = "raise RuntimeError('init refused')\ndef handler(event, context):\n    return 1\n"
    name = create_function(lam, code)
    lam.publish_version(FunctionName=name)
    run = InvokeScenario("TestLambdaConcurrency::test_provisioned_concurrency_init_failure")

    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    run.record("put_provisioned", put)
    run.record("get_provisioned_postwait", wait_ready(lam, name, "1"))
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")

    assert {label: found for label, found in run.differences.items() if found} == {}
