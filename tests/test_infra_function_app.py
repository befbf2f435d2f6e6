"""Offline checks of infra/: the Function App's settings (every required setting of
shared/config.py, nothing local-only), its identity and its Flex Consumption plan."""

from __future__ import annotations

import json

from shared import config
from tests.infra_support import (
    APP,
    INFRA,
    app_settings,
    parsed,
    render,
    resource_body,
    resources,
)


def test_every_required_setting_is_set_on_the_function_app():
    required = {s.name for s in config.SETTINGS if s.azure == "required"}
    missing = required - set(app_settings())
    assert not missing, (
        f"required settings missing from infra/app/function.bicep: {sorted(missing)}"
    )


def test_no_local_only_setting_reaches_azure():
    local_only = {s.name for s in config.SETTINGS if s.azure == "local-only"}
    assert not local_only & set(app_settings())


def test_every_app_setting_is_declared_or_a_host_setting():
    declared = {s.name for s in config.SETTINGS}
    host = {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
    for name in app_settings():
        prefix, _, suffix = name.partition("__")
        if name in declared or name in host:
            continue
        # Identity-based connection details of a declared or host connection.
        assert suffix in {
            "accountName",
            "credential",
            "clientId",
            "blobServiceUri",
            "fullyQualifiedNamespace",
        }, name
        assert prefix in {"AzureWebJobsStorage"} | {
            s.name.partition("__")[0] for s in config.SETTINGS
        }, name


def test_identity_based_connections_name_the_user_assigned_identity():
    settings = app_settings()
    for prefix in ("AzureWebJobsStorage", "EventHubConnection", "DeadLetterStorage"):
        assert settings[f"{prefix}__credential"] == "managedidentity"
        assert settings[f"{prefix}__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )


def test_function_app_holds_the_token_settings():
    # The app validates Microsoft Entra tokens itself with these (shared/auth.py); the values
    # are derived once in main.bicep (tests/test_infra_types.py evaluates them).
    settings = app_settings()
    assert settings["AUTH_ISSUER"] == "authIssuer"
    assert settings["AUTH_AUDIENCE"] == "authAudience"
    assert settings["AUTH_JWKS_URI"] == "authJwksUri"
    params = parsed(APP / "function.bicep")["parameters"]
    client_id = {
        d["type"]: d["argument"] for d in params["authApiClientId"]["decorators"]
    }
    # A GUID, so a deployment without the preprovision hook's value fails.
    assert client_id["min_length"] == client_id["max_length"] == 36
    assert params["authApiClientId"].get("default") is None
    main = parsed(INFRA / "main.bicep")
    outputs = main["outputs"]
    for name in (
        "AUTH_API_CLIENT_ID",
        "AUTH_API_APP_ID_URI",
        "AUTH_ISSUER",
        "AUTH_JWKS_URI",
    ):
        assert name in outputs, name
    assert render(outputs["AUTH_AUDIENCE"]["value"]) == (
        "functionApp.outputs.authAudience"
    )
    params_file = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params_file["authApiClientId"]["value"] == "${AUTH_API_CLIENT_ID}"
    assert params_file["authApiAppIdUri"]["value"] == "${AUTH_API_APP_ID_URI}"


def test_function_app_is_flex_consumption_python_with_identity_deployment():
    path = APP / "function.bicep"
    res = resources(path)
    plan = resource_body(res["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = resource_body(res["functionApp"])
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["httpsOnly"] is True
    app_config = site["properties"]["functionAppConfig"]
    assert app_config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert parsed(path)["parameters"]["pythonVersion"]["default"] == "3.11"
    auth = app_config["deployment"]["storage"]["authentication"]
    assert auth == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
