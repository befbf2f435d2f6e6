"""infra/scripts/preprovision.sh and infra/entra/orders-api.json, offline.

The hook creates or updates the API's Microsoft Entra app registration (app roles, application
ID URI, token version 2), its service principal, and hands the client id and application ID URI
to the deployment through the azd environment. It runs here against the stub CLIs of
tests/test_postprovision.py, whose Microsoft Graph stand-in remembers whether the app exists;
the manifest is checked against the roles the app enforces.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_postprovision import BASH, REPO, Run, Stubs

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

MANIFEST = REPO / "infra" / "entra" / "orders-api.json"
APP_ID = "11111111-2222-3333-4444-555555555555"  # what the Graph stub assigns
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
KEY = "orders-api-dev-" + hashlib.sha256(SUBSCRIPTION.encode()).hexdigest()[:8]
GRAPH = "https://graph.microsoft.com/v1.0"
APP_URL = f"{GRAPH}/applications(uniqueName='{KEY}')"
APP_READ = f"{APP_URL}?$select=id,appId,identifierUris"
SP_URL = f"{GRAPH}/servicePrincipals(appId='{APP_ID}')"
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ROLES = {
    "Orders.Admin",
    "Orders.Catalog",
    "Orders.Fulfillment",
    "Orders.Support",
    "Orders.Customer",
}
ENV = {
    "AZURE_ENV_NAME": "dev",
    "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
    "GRAPH_RETRY_SECONDS": "0",
}


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    return Stubs(tmp_path)


def preprovision(stubs: Stubs, scenario: dict[str, Any], **env: str) -> Run:
    """Run the hook as azd does: inside an azd environment (unless the scenario says not)."""
    merged = {**ENV, **env}
    return stubs.run(
        "preprovision.sh",
        {"azd_env": True, **scenario},
        {k: v for k, v in merged.items() if v},
    )


def bodies(run: Run, cli: str) -> list[dict[str, Any]]:
    return [
        json.loads(c["body"])
        for c in run.of(cli)
        if c.get("method") == "PATCH" and c.get("body")
    ]


def env_sets(run: Run) -> dict[str, str]:
    return {
        c["args"][2]: c["args"][3]
        for c in run.of("azd")
        if c["args"][:2] == ["env", "set"]
    }


def assert_registration(run: Run, cli: str) -> None:
    app, api, *sps = bodies(run, cli)
    (sp,) = {json.dumps(s, sort_keys=True) for s in sps}  # retries send the same body
    sp = json.loads(sp)
    declared = manifest()
    assert app["displayName"] == "Orders API (dev)"
    assert app["signInAudience"] == "AzureADMyOrg"
    assert {r["value"] for r in app["appRoles"]} == ROLES
    assert app["api"]["requestedAccessTokenVersion"] == 2
    # What refers to the app itself comes second, once its scope exists.
    assert "preAuthorizedApplications" not in app["api"]
    assert "identifierUris" not in app
    assert api["identifierUris"] == [f"api://{APP_ID}"]
    assert api["api"]["preAuthorizedApplications"][0]["appId"] == AZURE_CLI
    assert sp == {"appRoleAssignmentRequired": True}
    # Our own annotations never reach Graph.
    for body in (app, api, sp):
        assert "$comment" not in json.dumps(body)
    assert app["appRoles"] == declared["appRoles"]
    assert env_sets(run) == {
        "AUTH_API_CLIENT_ID": APP_ID,
        "AUTH_API_APP_ID_URI": f"api://{APP_ID}",
    }


def test_only_azd_signed_in_registers_the_api(stubs: Stubs):
    run = preprovision(stubs.install("azd", "curl"), {"azd_signed_in": True})
    assert run.returncode == 0, run.stderr
    assert run.graph_calls() == [
        ("curl", "PATCH", APP_URL),
        ("curl", "GET", APP_READ),
        ("curl", "PATCH", APP_URL),
        ("curl", "PATCH", SP_URL),
    ]
    upsert, _, update, sp = [c for c in run.of("curl")]
    assert "Prefer: create-if-missing" in upsert["headers"]
    assert "Prefer: create-if-missing" in sp["headers"]
    assert not [h for h in update["headers"] if h.startswith("Prefer")]
    # A Graph token, on curl's standard input only.
    scopes = {
        c["args"][c["args"].index("--scope") + 1]
        for c in run.of("azd")
        if c["args"][:2] == ["auth", "token"]
    }
    assert scopes == {"https://graph.microsoft.com/.default"}
    assert 'header = "Authorization: Bearer AZD-TOKEN-123"' in upsert["stdin"]
    assert not any("AZD-TOKEN-123" in a for c in run.calls for a in c["args"])
    assert_registration(run, "curl")
    assert f"AUTH_API_CLIENT_ID={APP_ID}" in run.stdout


def test_az_signed_in_registers_the_api(stubs: Stubs):
    run = preprovision(stubs.install("az", "azd", "curl"), {"az_signed_in": True})
    assert run.returncode == 0, run.stderr
    assert [m for _, m, _ in run.graph_calls()] == ["PATCH", "GET", "PATCH", "PATCH"]
    assert {cli for cli, _, _ in run.graph_calls()} == {"az"}
    rest = [c for c in run.of("az") if c["args"][:1] == ["rest"]]
    assert rest[0]["headers"] == "Prefer=create-if-missing"
    assert rest[2]["headers"] is None
    assert rest[3]["headers"] == "Prefer=create-if-missing"
    for call in rest:
        args = call["args"]
        assert args[args.index("--resource") + 1] == "https://graph.microsoft.com"
    assert_registration(run, "az")


def test_a_second_run_updates_the_same_registration(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    first = preprovision(tools, {"azd_signed_in": True})
    again = preprovision(tools, {"azd_signed_in": True})
    assert first.returncode == again.returncode == 0, again.stderr
    # Same key, same calls: the upsert updates (204) what the first run created.
    assert again.graph_calls() == first.graph_calls()
    assert env_sets(again) == env_sets(first)


def test_the_key_is_stable_per_environment_and_subscription(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    other = preprovision(
        tools,
        {"azd_signed_in": True},
        AZURE_SUBSCRIPTION_ID="99999999-1111-2222-3333-444444444444",
    )
    assert other.returncode == 0, other.stderr
    (key,) = {
        re.search(r"uniqueName='([^']+)'", url).group(1)
        for _, _, url in other.graph_calls()
        if "uniqueName" in url
    }
    assert key.startswith("orders-api-dev-") and key != KEY


def test_new_apps_are_waited_for_while_they_replicate(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    run = preprovision(
        tools, {"azd_signed_in": True, "app_reads_missing": 2, "sp_failures": 2}
    )
    assert run.returncode == 0, run.stderr
    methods = [(m, url == SP_URL) for _, m, url in run.graph_calls()]
    assert methods.count(("GET", False)) == 3
    assert methods.count(("PATCH", True)) == 3
    assert_registration(run, "curl")


def test_overrides_name_the_registration_and_its_uri(stubs: Stubs):
    tools = stubs.install("azd", "curl")
    run = preprovision(
        tools,
        {"azd_signed_in": True},
        AUTH_API_UNIQUE_NAME="orders-api-shared",
        AUTH_API_IDENTIFIER_URI="api://orders.contoso.example",
        AZURE_SUBSCRIPTION_ID="",
    )
    assert run.returncode == 0, run.stderr
    assert (
        run.graph_calls()[0][2]
        == f"{GRAPH}/applications(uniqueName='orders-api-shared')"
    )
    assert bodies(run, "curl")[1]["identifierUris"] == ["api://orders.contoso.example"]
    assert env_sets(run)["AUTH_API_APP_ID_URI"] == "api://orders.contoso.example"


def test_nobody_signed_in_stops_before_any_graph_call(stubs: Stubs):
    run = preprovision(stubs.install("azd", "az", "curl"), {})
    assert run.returncode == 3
    assert run.graph_calls() == []
    assert "azd auth login" in run.stderr and "AUTH_API_MANAGE=false" in run.stderr


@pytest.mark.parametrize("missing", ["AZURE_ENV_NAME", "AZURE_SUBSCRIPTION_ID"])
def test_missing_inputs_stop_the_hook_before_any_call(stubs: Stubs, missing: str):
    run = preprovision(
        stubs.install("azd", "curl"), {"azd_signed_in": True}, **{missing: ""}
    )
    assert run.returncode == 2
    assert missing in run.stderr
    assert run.graph_calls() == []


def test_an_unsafe_key_is_refused(stubs: Stubs):
    run = preprovision(
        stubs.install("azd", "curl"),
        {"azd_signed_in": True},
        AUTH_API_UNIQUE_NAME="x') or (1 eq 1",
    )
    assert run.returncode == 2
    assert run.graph_calls() == []


def test_a_refused_registration_explains_the_permissions(stubs: Stubs):
    run = preprovision(
        stubs.install("azd", "curl"), {"azd_signed_in": True, "graph_refused": True}
    )
    assert run.returncode == 4
    assert "Authorization_RequestDenied" in run.stderr
    assert "Application.ReadWrite.OwnedBy" in run.stderr
    assert [m for _, m, _ in run.graph_calls()] == ["PATCH"]
    assert env_sets(run) == {}


def test_a_service_principal_that_never_appears_fails_the_hook(stubs: Stubs):
    run = preprovision(
        stubs.install("azd", "curl"),
        {"azd_signed_in": True, "sp_failures": 99},
        GRAPH_ATTEMPTS="3",
    )
    assert run.returncode == 5
    assert [url == SP_URL for _, _, url in run.graph_calls()].count(True) == 3
    assert env_sets(run) == {}


def test_an_azd_environment_that_cannot_be_written_fails_the_hook(stubs: Stubs):
    run = preprovision(
        stubs.install("azd", "curl"),
        {"azd_signed_in": True, "azd_env_set_fails": True},
    )
    assert run.returncode == 6


def test_without_an_azd_environment_the_values_are_printed(stubs: Stubs):
    # `az deployment sub create` path: azd may be installed, but there is no azd project.
    run = preprovision(
        stubs.install("azd", "az", "curl"), {"az_signed_in": True, "azd_env": False}
    )
    assert run.returncode == 0, run.stderr
    assert env_sets(run) == {}
    assert run.stdout.splitlines() == [
        f"AUTH_API_CLIENT_ID={APP_ID}",
        f"AUTH_API_APP_ID_URI=api://{APP_ID}",
    ]
    assert f"authApiClientId={APP_ID}" in run.stderr


def test_an_administrator_made_registration_is_left_alone(stubs: Stubs):
    tools = stubs.install("azd", "az", "curl")
    given = {
        "AUTH_API_MANAGE": "false",
        "AUTH_API_CLIENT_ID": APP_ID,
        "AUTH_API_APP_ID_URI": f"api://{APP_ID}",
    }
    run = preprovision(tools, {"azd_signed_in": True}, **given)
    assert run.returncode == 0, run.stderr
    assert [c for c in run.calls if c["args"][:2] != ["env", "get-values"]] == []
    incomplete = preprovision(
        tools, {"azd_signed_in": True}, **{**given, "AUTH_API_APP_ID_URI": ""}
    )
    assert incomplete.returncode == 2
    assert "AUTH_API_APP_ID_URI" in incomplete.stderr


# ---------------------------------------------------------------------------------------
# The manifest, and how its values reach the deployment


def test_the_app_roles_are_exactly_the_five_the_api_enforces():
    roles = manifest()["appRoles"]
    assert [r["value"] for r in roles] == [
        "Orders.Admin",
        "Orders.Catalog",
        "Orders.Fulfillment",
        "Orders.Support",
        "Orders.Customer",
    ]
    ids = [r["id"] for r in roles] + [
        s["id"] for s in manifest()["api"]["oauth2PermissionScopes"]
    ]
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert len(set(ids)) == len(ids) and all(re.fullmatch(guid, i) for i in ids)
    for role in roles:
        assert role["isEnabled"] is True
        assert role["displayName"] and role["description"], role["value"]
        assert set(role["allowedMemberTypes"]) <= {"User", "Application"}
    members = {r["value"]: set(r["allowedMemberTypes"]) for r in roles}
    # A customer is a person: self-service binds records to the caller's own subject.
    assert members.pop("Orders.Customer") == {"User"}
    assert all(m == {"User", "Application"} for m in members.values()), members


def test_the_roles_match_the_ones_the_app_checks():
    auth = REPO / "shared" / "auth.py"
    if not auth.exists():
        pytest.skip("shared/auth.py not there yet")
    declared = set(re.findall(r'"(Orders\.[A-Za-z]+)"', auth.read_text()))
    assert declared == ROLES


def test_tokens_are_version_2_and_the_cli_is_pre_authorized_for_the_scope():
    api = manifest()["api"]
    # v2 tokens carry the issuer .../v2.0 that AUTH_ISSUER and API Management expect.
    assert api["requestedAccessTokenVersion"] == 2
    (scope,) = api["oauth2PermissionScopes"]
    assert scope["isEnabled"] is True and scope["type"] == "User"
    (cli,) = api["preAuthorizedApplications"]
    assert cli["appId"] == AZURE_CLI
    assert cli["delegatedPermissionIds"] == [scope["id"]]
    assert manifest()["signInAudience"] == "AzureADMyOrg"
    assert manifest()["servicePrincipal"]["appRoleAssignmentRequired"] is True


def test_azure_yaml_runs_the_hook_before_provisioning():
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    for shell in ("posix", "windows"):
        hook = doc["hooks"]["preprovision"][shell]
        assert hook["run"] == "bash ./infra/scripts/preprovision.sh"
        assert hook["continueOnError"] is False


def test_the_values_the_hook_records_are_the_ones_the_deployment_reads():
    hook = (REPO / "infra" / "scripts" / "preprovision.sh").read_text()
    recorded = set(re.findall(r"azd env set (\w+) ", hook))
    assert recorded == {"AUTH_API_CLIENT_ID", "AUTH_API_APP_ID_URI"}
    params = json.loads((REPO / "infra" / "main.parameters.json").read_text())[
        "parameters"
    ]
    assert params["authApiClientId"]["value"] == "${AUTH_API_CLIENT_ID}"
    assert params["authApiAppIdUri"]["value"] == "${AUTH_API_APP_ID_URI}"
