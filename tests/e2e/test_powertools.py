"""A function that vendors Lambda Powertools for Python runs on Lamina's Python runtime."""

from __future__ import annotations

import base64
import json

from tests.conftest import PYTHON_RUNTIME, ROLE, Server, unique_name
from tests.e2e.vendored import POWERTOOLS, vendored, zip_tree

APP = """
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, event_source

logger = Logger(service="orders")
metrics = Metrics(namespace="Lamina", service="orders")


@metrics.log_metrics
@logger.inject_lambda_context
@event_source(data_class=APIGatewayProxyEventV2)
def handler(event, context):
    logger.info("order received", extra={"path": event.raw_path})
    metrics.add_metric(name="Orders", unit=MetricUnit.Count, value=1)
    return {
        "path": event.raw_path,
        "method": event.request_context.http.method,
        "order": event.json_body,
    }
"""

EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/orders",
    "rawQueryString": "",
    "headers": {"content-type": "application/json"},
    "requestContext": {"http": {"method": "POST", "path": "/orders"}, "requestId": "r1"},
    "body": json.dumps({"item": "tea", "count": 2}),
    "isBase64Encoded": False,
}


def json_lines(log: str) -> list[dict]:
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_powertools_logger_metrics_and_event_classes_work_in_a_function(
    lam: object, server: Server
) -> None:
    tree = vendored(POWERTOOLS)
    name = unique_name("powertools")
    lam.create_function(  # type: ignore[attr-defined]
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_tree(tree, {"app.py": (APP, 0o644)})},
        Timeout=30,
    )
    lam.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )

    response = lam.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(EVENT), LogType="Tail"
    )

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "path": "/orders",
        "method": "POST",
        "order": {"item": "tea", "count": 2},
    }
    records = json_lines(base64.b64decode(response["LogResult"]).decode())
    logged = next(r for r in records if r.get("message") == "order received")
    assert logged["function_request_id"] == request_id
    assert logged["function_name"] == name
    assert logged["cold_start"] is True
    assert (logged["level"], logged["service"], logged["path"]) == ("INFO", "orders", "/orders")
    metric = next(r for r in records if "_aws" in r)
    directive = metric["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Lamina"
    assert directive["Metrics"] == [{"Name": "Orders", "Unit": "Count"}]
    assert metric["Orders"] == [1.0]
    assert metric["service"] == "orders"
    found = server.logs().filter_log_events(  # type: ignore[attr-defined]
        logGroupName=f"/aws/lambda/{name}",
        filterPattern='{ $.level = "INFO" && $.path = "/orders" }',
    )
    assert [json.loads(e["message"])["message"] for e in found["events"]] == ["order received"]
