"""Offline checks of the alerts and the workbook (infra/app/observability.bicep, alerts.json,
workbook.json): they parse, they use only properties their resource types have, every
metric and dimension they query is one the code emits, and the thresholds are issue 12's.

The Bicep files themselves are also parsed and run through checkov by tests/test_infra*.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.telemetry import METRICS
from tests.infra_support import render

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
APP = INFRA / "app"
MODULE = APP / "observability.bicep"
ALERTS = json.loads((APP / "alerts.json").read_text())["alerts"]
WORKBOOK = json.loads((APP / "workbook.json").read_text())
EMITTED = {m.name: m for m in METRICS}

# Issue 12: command latency > 500 ms, query latency > 200 ms, sync lag > 10 s, command
# failure rate > 1 %, read-model freshness > 30 s, dead letters > 0, outbox age > 60 s.
THRESHOLDS = {
    "cqrs.command.duration": 500,
    "cqrs.query.duration": 200,
    "cqrs.sync.lag": 10,
    "cqrs.commands": 1,
    "cqrs.readmodel.freshness": 30,
    "cqrs.dead_letters": 0,
    "cqrs.outbox.oldest_age": 60,
}

# Property names of each resource type at the API version used, from the generated types
# of github.com/Azure/bicep-types-az (generated/monitor_1/microsoft.insights/2023-12-01,
# .../2023-01-01, generated/applicationinsights/microsoft.insights/2023-06-01).
SCHEMAS: dict[str, dict[str, set[str]]] = {
    "Microsoft.Insights/scheduledQueryRules@2023-12-01": {
        "": {"name", "location", "tags", "kind", "identity", "properties"},
        "properties": {
            "description", "displayName", "severity", "enabled", "scopes",
            "evaluationFrequency", "windowSize", "overrideQueryTimeRange",
            "targetResourceTypes", "criteria", "muteActionsDuration", "actions",
            "checkWorkspaceAlertsStorageConfigured", "skipQueryValidation",
            "autoMitigate", "resolveConfiguration",
        },
        "condition": {
            "query", "timeAggregation", "metricMeasureColumn", "resourceIdColumn",
            "dimensions", "operator", "threshold", "failingPeriods", "metricName",
        },
    },
    "Microsoft.Insights/actionGroups@2023-01-01": {
        "": {"name", "location", "tags", "properties"},
        "properties": {
            "groupShortName", "enabled", "emailReceivers", "smsReceivers",
            "webhookReceivers", "itsmReceivers", "azureAppPushReceivers",
            "automationRunbookReceivers", "voiceReceivers", "logicAppReceivers",
            "azureFunctionReceivers", "armRoleReceivers", "eventHubReceivers",
        },
        "emailReceiver": {"name", "emailAddress", "useCommonAlertSchema"},
    },
    "Microsoft.Insights/workbooks@2023-06-01": {
        "": {"name", "location", "tags", "kind", "identity", "etag", "properties"},
        "properties": {
            "displayName", "serializedData", "version", "category", "tags",
            "sourceId", "storageUri", "description",
        },
    },
}  # fmt: skip


def _module() -> dict[str, Any]:
    return BicepParser().parse(file_path=MODULE)


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    body = resource["config"]
    return body["config"] if "loop_type" in body or "condition" in body else body


def _resources() -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        name: (f"{r['type']}@{r['api_version']}", _body(r))
        for name, r in _module()["resources"].items()
        if not r.get("existing")
    }


def _metric_names(query: str) -> set[str]:
    single = set(re.findall(r"name\s*==\s*'([^']+)'", query))
    listed = re.findall(r"name\s+in\s*\(([^)]*)\)", query)
    return single | {n for group in listed for n in re.findall(r"'([^']+)'", group)}


def _dimensions(query: str) -> set[str]:
    return set(re.findall(r"customDimensions\['([^']+)'\]", query))


def _span_attributes_set_by_the_code() -> set[str]:
    source = (REPO / "shared" / "telemetry.py").read_text()
    return set(re.findall(r"set_attribute\(\"([a-z_.]+)\"", source))


def _balanced(query: str) -> bool:
    text = re.sub(r"'[^']*'", "''", query)
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0 and text.count("'") % 2 == 0


def test_the_module_is_wired_from_main_with_the_alert_email():
    modules = BicepParser().parse(file_path=INFRA / "main.bicep")["modules"]
    (call,) = [
        m for m in modules.values() if m["detail"]["path"] == "app/observability.bicep"
    ]
    params = call["config"]["params"]
    assert params["alertEmail"] == "alertEmail"
    assert (
        render(params["applicationInsightsName"])
        == "monitoring.outputs.applicationInsightsName"
    )
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL}"


def test_resources_use_only_properties_of_their_types():
    resources = _resources()
    types = {t for t, _ in resources.values()}
    assert types == set(SCHEMAS), types
    for symbol, (kind, body) in resources.items():
        schema = SCHEMAS[kind]
        assert set(body) <= schema[""], (symbol, set(body) - schema[""])
        assert set(body["properties"]) <= schema["properties"], symbol
        if kind.startswith("Microsoft.Insights/scheduledQueryRules"):
            (condition,) = body["properties"]["criteria"]["allOf"]
            assert set(condition) <= schema["condition"]
            assert condition["operator"] == "GreaterThan"
            assert condition["metricMeasureColumn"] == "value"
            assert body["kind"] == "LogAlert"
            actions = body["properties"]["actions"]["actionGroups"]
            assert [render(a) for a in actions] == ["actionGroup.id"]
        if kind.startswith("Microsoft.Insights/actionGroups"):
            assert len(body["properties"]["groupShortName"]) <= 12
            assert body["location"] == "global"


def test_the_action_group_mails_the_address_given():
    text = MODULE.read_text()
    assert "emailAddress: alertEmail" in text
    emails = _module()["variables"]["emailReceivers"]["value"]
    for receiver in emails:
        assert (
            set(receiver)
            <= SCHEMAS["Microsoft.Insights/actionGroups@2023-01-01"]["emailReceiver"]
        )


def test_alerts_cover_the_thresholds_of_the_issue():
    by_metric = {}
    for alert in ALERTS:
        (metric,) = _metric_names(alert["query"])
        assert metric == alert["metric"], alert["name"]
        by_metric[metric] = alert
    assert set(by_metric) == set(THRESHOLDS)
    for metric, threshold in THRESHOLDS.items():
        alert = by_metric[metric]
        # Bicep types the threshold as an integer.
        assert alert["threshold"] == threshold and isinstance(alert["threshold"], int)
        assert 0 <= alert["severity"] <= 4
        assert alert["title"] and alert["description"]
    failure_rate = by_metric["cqrs.commands"]["query"]
    assert "'failed'" in failure_rate and "100.0 *" in failure_rate  # a percentage


@pytest.mark.parametrize("alert", ALERTS, ids=[a["name"] for a in ALERTS])
def test_every_alert_queries_what_the_code_emits(alert: dict[str, Any]):
    query = alert["query"]
    assert query.startswith("customMetrics |") and _balanced(query)
    assert re.search(r"\bvalue\s*=", query), "the rule measures the column `value`"
    (metric,) = _metric_names(query)
    assert metric in EMITTED
    assert _dimensions(query) <= set(EMITTED[metric].attributes)
    for dimension in alert["dimensions"]:
        assert dimension["name"] in EMITTED[metric].attributes
        assert re.search(rf"\bby\b.*\b{dimension['name']}\b", query)
    assert len(alert["name"]) <= 40


def test_workbook_is_a_notebook_with_the_charts_the_issue_lists():
    assert WORKBOOK["version"] == "Notebook/1.0"
    queries = {
        item["name"]: item["content"]["query"]
        for item in WORKBOOK["items"]
        if item["type"] == 3
    }
    for item in WORKBOOK["items"]:
        if item["type"] == 3:
            content = item["content"]
            assert content["version"] == "KqlItem/1.0"
            assert content["resourceType"] == "microsoft.insights/components"
            assert content["title"]
    text = " ".join(queries.values())
    # commands/s, failure rate, command and query latency p50/p95, lag and freshness per
    # projection, dead letters, outbox age.
    assert "sum(valueSum) / 300.0" in queries["commands-per-second"]
    assert "'failed'" in queries["command-failure-rate"]
    for name, span_attribute in (
        ("command-latency", "cqrs.command"),
        ("query-latency", "cqrs.query"),
    ):
        assert "percentile(duration, 50)" in queries[name]
        assert "percentile(duration, 95)" in queries[name]
        assert f"customDimensions['{span_attribute}']" in queries[name]
    assert "by bin(timestamp, 5m), projection" in queries["sync-lag"]
    assert "by bin(timestamp, 5m), projection" in queries["readmodel-freshness"]
    assert _metric_names(queries["dead-letters"]) == {"cqrs.dead_letters"}
    assert "cqrs.outbox.oldest_age" in _metric_names(queries["outbox"])
    assert {
        "cqrs.sync.lag",
        "cqrs.readmodel.freshness",
        "cqrs.commands",
    } <= _metric_names(text)


def test_every_workbook_query_uses_what_the_code_emits():
    spans = _span_attributes_set_by_the_code()
    assert {"cqrs.command", "cqrs.query"} <= spans
    for item in WORKBOOK["items"]:
        if item["type"] != 3:
            continue
        query = item["content"]["query"]
        assert _balanced(query), item["name"]
        metrics = _metric_names(query)
        assert metrics <= set(EMITTED), item["name"]
        allowed = {a for m in metrics for a in EMITTED[m].attributes}
        if "requests" in query:
            allowed |= spans  # request spans: attributes of the HTTP span
        assert _dimensions(query) <= allowed, item["name"]
        assert metrics or "requests" in query, item["name"]


def test_the_workbook_fits_in_bicep_and_names_its_source():
    text = MODULE.read_text()
    assert "loadJsonContent('workbook.json')" in text
    assert "loadJsonContent('alerts.json')" in text
    assert len((APP / "workbook.json").read_text()) < 131_072  # loadJsonContent's limit
    assert "fallbackResourceIds" in text and "sourceId: applicationInsights.id" in text
