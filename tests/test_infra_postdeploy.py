"""infra/scripts/postdeploy.sh against stub CLIs (the stubs of tests/test_postprovision.py).

The hook replaces reading the Function App host key with listKeys() during provisioning: after
the code is published it reads the key from the running app (retrying while the host starts),
stores it in API Management as a secret named value, points the backend's x-functions-key
header at it and tells azd that later provisioning may keep that credential. The key must
never appear on a command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_postprovision import BASH, SUBSCRIPTION, Run, Stubs

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

HOST_KEY = "s3cr3t-host-key/+=="
GROUP = f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-test/providers"
LIST_KEYS = f"{GROUP}/Microsoft.Web/sites/func-test/host/default/listkeys?api-version=2024-04-01"
NAMED_VALUE = (
    f"{GROUP}/Microsoft.ApiManagement/service/apim-test/namedValues/orders-functions-host-key"
    "?api-version=2024-05-01"
)
BACKEND = (
    f"{GROUP}/Microsoft.ApiManagement/service/apim-test/backends/orders-functions"
    "?api-version=2024-05-01"
)
OUTPUTS = {
    "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_FUNCTION_APP_NAME": "func-test",
    "AZURE_APIM_NAME": "apim-test",
    "AZURE_ENV_NAME": "dev",
    "HOST_KEY_RETRY_SECONDS": "0",
    "NAMED_VALUE_POLL_SECONDS": "0",
}


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    return Stubs(tmp_path)


def postdeploy(stubs: Stubs, scenario: dict[str, Any], **env: str) -> Run:
    merged = {**OUTPUTS, **env}
    scenario = {"host_key": HOST_KEY, **scenario}
    return stubs.run("postdeploy.sh", scenario, {k: v for k, v in merged.items() if v})


def assert_key_never_on_a_command_line(run: Run) -> None:
    assert HOST_KEY not in run.stdout + run.stderr
    for call in run.calls:
        assert not any(HOST_KEY in arg for arg in call["args"]), call["tool"]


def assert_named_value_and_backend(run: Run, cli: str) -> None:
    (put,) = [c for c in run.of(cli) if c.get("method") == "PUT"]
    assert json.loads(put["body"]) == {
        "properties": {
            "displayName": "orders-functions-host-key",
            "secret": True,
            "value": HOST_KEY,
        }
    }
    (patch,) = [c for c in run.of(cli) if c.get("method") == "PATCH"]
    assert json.loads(patch["body"]) == {
        "properties": {
            "credentials": {
                "header": {"x-functions-key": ["{{orders-functions-host-key}}"]}
            }
        }
    }


def test_only_azd_signed_in_hands_the_key_to_api_management(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    scenario = {
        "azd_signed_in": True,
        "listkeys_failures": 2,  # the host is still starting
        "named_value_states": ["Creating", "Succeeded"],
    }
    run = postdeploy(tools, scenario, HOST_KEY_ATTEMPTS="5")
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == [
        ("curl", "POST", LIST_KEYS),
        ("curl", "POST", LIST_KEYS),
        ("curl", "POST", LIST_KEYS),
        ("curl", "PUT", NAMED_VALUE),
        ("curl", "GET", NAMED_VALUE),
        ("curl", "GET", NAMED_VALUE),
        ("curl", "PATCH", BACKEND),
    ]
    assert_named_value_and_backend(run, "curl")
    (patch,) = [c for c in run.of("curl") if c.get("method") == "PATCH"]
    assert "If-Match: *" in patch["args"]
    for call in run.of("curl"):
        if call.get("method"):
            assert 'header = "Authorization: Bearer AZD-TOKEN-123"' in call["stdin"]
    assert ["env", "set", "APIM_BACKEND_CREDENTIAL_EXISTS", "true"] in [
        c["args"] for c in run.of("azd")
    ]
    assert_key_never_on_a_command_line(run)


def test_az_signed_in_hands_the_key_over_with_az_rest(stubs: Stubs):
    run = postdeploy(stubs.install("az"), {"az_signed_in": True})
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == [
        ("az", "POST", LIST_KEYS),
        ("az", "PUT", NAMED_VALUE),
        ("az", "GET", NAMED_VALUE),
        ("az", "PATCH", BACKEND),
    ]
    assert_named_value_and_backend(run, "az")
    (put,) = [c for c in run.of("az") if c.get("method") == "PUT"]
    assert put["args"][put["args"].index("--body") + 1].startswith("@")
    (patch,) = [c for c in run.of("az") if c.get("method") == "PATCH"]
    assert patch["headers"] == "If-Match=*"
    # No azd to record the flag: the script says what to pass instead.
    assert "apimBackendCredentialExists=true" in run.stdout
    assert_key_never_on_a_command_line(run)


def test_nobody_signed_in_fails_before_any_call(stubs: Stubs):
    run = postdeploy(stubs.install("azd", "az", "curl"), {})
    assert run.returncode == 3
    assert "neither azd nor the Azure CLI is signed in" in run.stderr
    assert "azd hooks run postdeploy" in run.stderr
    assert run.arm_calls() == []


def test_a_host_that_never_gives_keys_fails_without_touching_api_management(
    stubs: Stubs,
):
    tools = stubs.install("azd", "curl")
    run = postdeploy(
        tools, {"azd_signed_in": True, "listkeys_failures": 99}, HOST_KEY_ATTEMPTS="3"
    )
    assert run.returncode == 4
    assert [method for _, method, _ in run.arm_calls()] == ["POST", "POST", "POST"]
    assert "no default host key" in run.stderr and "ServiceUnavailable" in run.stderr


def test_keys_without_a_default_function_key_count_as_not_ready(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    run = postdeploy(
        tools, {"azd_signed_in": True, "host_key": ""}, HOST_KEY_ATTEMPTS="2"
    )
    assert run.returncode == 4
    assert len(run.arm_calls()) == 2
    assert "without a default function key" in run.stderr
    assert "MASTER" not in run.stdout + run.stderr  # the other keys are never echoed


def test_a_refused_named_value_stops_before_the_backend(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    run = postdeploy(tools, {"azd_signed_in": True, "named_value_refused": True})
    assert run.returncode == 5
    assert [method for _, method, _ in run.arm_calls()] == ["POST", "PUT"]
    assert "refused the named value" in run.stderr
    assert_key_never_on_a_command_line(run)


@pytest.mark.parametrize(
    "missing", ["AZURE_SUBSCRIPTION_ID", "AZURE_FUNCTION_APP_NAME", "AZURE_APIM_NAME"]
)
def test_missing_outputs_stop_the_hook(stubs: Stubs, missing: str):
    run = postdeploy(
        stubs.install("azd", "curl"), {"azd_signed_in": True}, **{missing: ""}
    )
    assert run.returncode == 2
    assert missing in run.stderr
    assert run.arm_calls() == []
