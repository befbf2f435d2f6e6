"""What the real Functions host needs from the indexed functions (app.get_functions())."""

import json

import function_app
from shared import config
from shared.http import ROUTES

# get_functions() validates names and may run once per app object, as in the worker.
INDEXED = function_app.app.get_functions()
FUNCTIONS = {f.get_function_name(): f for f in INDEXED}


def bindings(name: str) -> list[dict]:
    # The JSON the worker sends to the host, enums and all.
    return [json.loads(b) for b in FUNCTIONS[name].get_raw_bindings()]


def trigger(name: str) -> dict:
    return next(b for b in bindings(name) if b["type"].endswith("Trigger"))


def test_every_declared_route_is_an_http_function_with_method_and_auth():
    assert ROUTES, "routes were not registered"
    for spec in ROUTES:
        http = trigger(spec.name)
        assert http["type"] == "httpTrigger"
        assert http["route"] == spec.path
        if spec.method == "ANY":
            assert "methods" not in http
        else:
            assert http["methods"] == [spec.method]
        # No host keys: the app checks the caller's Entra ID token itself (shared.auth).
        assert http["authLevel"].lower() == "anonymous"  # read case-insensitively
        assert spec.anonymous or spec.roles
        out = [
            b
            for b in bindings(spec.name)
            if b["type"] == "http" and b["direction"] == "OUT"
        ]
        assert out and out[0]["name"] == "$return"


def test_only_health_openapi_and_the_fallback_are_anonymous():
    assert {s.name for s in ROUTES if s.anonymous} == {
        "health",
        "openapi",
        "route_fallback",
    }


def test_event_hub_triggers_have_hub_connection_distinct_consumer_groups_and_batches():
    hubs = {
        name: trigger(name)
        for name in FUNCTIONS
        if trigger(name)["type"] == "eventHubTrigger"
    }
    assert hubs, "no projection functions"
    groups = [t["consumerGroup"] for t in hubs.values()]
    assert len(groups) == len(set(groups)), (
        "each projection needs its own consumer group"
    )
    assert set(groups) <= set(config.topology()["eventHub"]["consumerGroups"])
    for name, t in hubs.items():
        assert t["eventHubName"] == "%EVENTHUB_NAME%", name
        assert t["connection"] == "EventHubConnection", name
        assert t["cardinality"].lower() == "many", name
        retry = FUNCTIONS[name].get_settings_dict("retry_policy")
        assert (
            retry
            and retry["strategy"] == "exponential_backoff"
            and int(retry["max_retry_count"]) >= 3
        )


def test_outbox_relay_is_a_timer_with_a_six_field_schedule():
    t = trigger("outbox_relay")
    assert t["type"] == "timerTrigger"
    assert len(t["schedule"].split()) == 6


def test_function_names_are_unique():
    names = [f.get_function_name() for f in INDEXED]
    assert len(names) == len(set(names))
