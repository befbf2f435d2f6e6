"""Offline checks of infra/: API Management (its policy, token validation at the edge,
rate limits) and the OpenAPI document it imports."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from tests.infra_support import (
    APP,
    INFRA,
    LOAD_TEXT_CONTENT_MAX_CHARS,
    REPO,
    infra_text_files,
    main_modules,
    parsed,
    rel,
    render,
    resource_body,
    resources,
)


def apim_policy() -> ET.Element:
    text = (APP / "apim-policy.xml").read_text()
    tokens = set(re.findall(r"__[A-Z_]+__", text))
    replaced = set(re.findall(r"'(__[A-Z_]+__)'", (APP / "apim.bicep").read_text()))
    assert tokens == replaced, f"tokens not replaced by apim.bicep: {tokens - replaced}"
    for token, value in POLICY_SAMPLE.items():
        text = text.replace(token, value)
    return ET.fromstring(text)


# What apim.bicep puts in place of each placeholder, for a sample tenant.
TENANT = "72f988bf-0000-4000-8000-000000000001"


CLIENT_ID = "11111111-2222-3333-4444-555555555555"


POLICY_SAMPLE = {
    "__ALLOWED_ORIGINS__": "<origin>*</origin>",
    "__RATE_LIMIT_CALLS__": "300",
    "__RATE_LIMIT_PERIOD__": "60",
    "__BACKEND_ID__": "orders-functions",
    "__AUTH_OPENID_CONFIG_URL__": (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    ),
    "__AUTH_ISSUER__": f"https://login.microsoftonline.com/{TENANT}/v2.0",
    "__AUTH_APP_ID_URI__": f"api://{CLIENT_ID}",
    "__AUTH_CLIENT_ID__": CLIENT_ID,
    "__AUTH_TENANT_ID__": TENANT,
}


def test_apim_policy_sets_cors_and_correlation_id():
    root = apim_policy()
    inbound = root.find("inbound")
    assert inbound is not None and inbound.find("cors") is not None
    for section in ("inbound", "outbound", "on-error"):
        headers = root.findall(f"{section}/set-header[@name='X-Correlation-Id']")
        assert headers, f"{section} does not set X-Correlation-Id"
    variable = inbound.find("set-variable[@name='correlationId']")
    assert variable is not None
    assert "X-Correlation-Id" in variable.get(
        "value"
    ) and "context.RequestId" in variable.get("value")
    exposed = [h.text for h in inbound.findall("cors/expose-headers/header")]
    assert "X-Correlation-Id" in exposed and "ETag" in exposed
    assert "WWW-Authenticate" in exposed
    # Browsers may send the bearer token; no subscription key header any more.
    allowed = [h.text for h in inbound.findall("cors/allowed-headers/header")]
    assert "Authorization" in allowed
    assert "Ocp-Apim-Subscription-Key" not in allowed


def token_branches() -> tuple[ET.Element, ET.Element, ET.Element]:
    """(choose, when: the anonymous operations, otherwise: everything else) of inbound."""
    inbound = apim_policy().find("inbound")
    (choose,) = inbound.findall("choose")
    (when,) = choose.findall("when")
    otherwise = choose.find("otherwise")
    assert otherwise is not None
    return choose, when, otherwise


def test_the_token_is_validated_after_cors_on_every_other_operation():
    inbound = apim_policy().find("inbound")
    tags = [child.tag for child in inbound]
    _, _, otherwise = token_branches()
    # After CORS (preflights are answered first) and the correlation id (a 401 carries it),
    # before the backend is chosen.
    assert tags.index("cors") < tags.index("set-variable") < tags.index("choose")
    assert tags.index("choose") < tags.index("set-backend-service")
    assert [child.tag for child in otherwise] == ["validate-jwt", "rate-limit-by-key"]
    assert len(apim_policy().findall(".//validate-jwt")) == 1
    jwt = otherwise.find("validate-jwt")
    assert jwt.get("header-name") == "Authorization"
    assert jwt.get("require-scheme") == "Bearer"
    assert jwt.get("failed-validation-httpcode") == "401"
    assert jwt.get("require-expiration-time") == "true"
    assert jwt.get("require-signed-tokens") == "true"
    assert jwt.get("output-token-variable-name") == "jwt"
    # Signing keys and issuer from the tenant's v2.0 OpenID configuration; the audiences the
    # app accepts too (AUTH_AUDIENCE), and this tenant only.
    (config_url,) = [e.get("url") for e in jwt.findall("openid-config")]
    assert config_url == POLICY_SAMPLE["__AUTH_OPENID_CONFIG_URL__"]
    assert [e.text for e in jwt.findall("issuers/issuer")] == [
        POLICY_SAMPLE["__AUTH_ISSUER__"]
    ]
    assert [e.text for e in jwt.findall("audiences/audience")] == [
        f"api://{CLIENT_ID}",
        CLIENT_ID,
    ]
    (claim,) = jwt.findall("required-claims/claim")
    assert claim.get("name") == "tid"
    assert [v.text for v in claim.findall("value")] == [TENANT]
    # The documented element order of validate-jwt.
    order = ["openid-config", "audiences", "issuers", "required-claims"]
    assert [child.tag for child in jwt] == order


def anonymous_operations() -> set[tuple[str, str]]:
    """(method, path) the policy lets through without a token, read from its condition."""
    _, when, _ = token_branches()
    condition = when.get("condition")
    methods = set(re.findall(r'context\.Request\.Method == "(\w+)"', condition))
    paths = set(re.findall(r'context\.Operation\.UrlTemplate == "([^"]+)"', condition))
    (method,) = methods
    return {(method, path) for path in paths}


def test_only_the_anonymous_operations_skip_the_token():
    assert anonymous_operations() == {("GET", "/health"), ("GET", "/openapi.json")}
    _, when, _ = token_branches()
    # The deep health check reveals the dependencies' state: it needs a token (and the app
    # asks for Orders.Admin).
    assert '!context.Request.Url.Query.ContainsKey("deep")' in when.get("condition")
    assert [child.tag for child in when] == ["rate-limit-by-key"]
    # Where the OpenAPI document declares security, its anonymous operations are these.
    doc = json.loads((INFRA / "openapi.json").read_text())
    operations = {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    }
    assert anonymous_operations() <= set(operations)
    if any("security" in op for op in operations.values()):
        declared = {key for key, op in operations.items() if op.get("security") == []}
        assert declared == anonymous_operations()


def test_rate_limits_are_per_caller():
    root = apim_policy()
    # rate-limit counts per subscription key, which clients no longer send.
    assert root.find(".//rate-limit") is None
    _, when, otherwise = token_branches()
    for limit in root.findall(".//rate-limit-by-key"):
        assert limit.get("calls") == "300" and limit.get("renewal-period") == "60"
    subject = otherwise.find("rate-limit-by-key").get("counter-key")
    # The validated token's subject: oid (stable per user or app in the tenant), else sub.
    assert 'context.Variables["jwt"]' in subject
    assert 'GetValueOrDefault("oid", jwt.Subject)' in subject
    address = when.find("rate-limit-by-key").get("counter-key")
    assert "context.Request.IpAddress" in address
    assert len(root.findall(".//rate-limit-by-key")) == 2


def test_a_token_refused_at_the_edge_gets_the_apps_401():
    (when,) = apim_policy().findall("on-error/choose/when")
    assert 'context.LastError.Source == "validate-jwt"' in when.get("condition")
    assert when.find("set-status").get("code") == "401"
    challenge = when.find("set-header[@name='WWW-Authenticate']/value").text
    # The app's challenge (shared/auth.py): invalid_token only when a token was sent.
    assert 'Bearer realm=\\"orders\\"' in challenge
    assert 'error=\\"invalid_token\\"' in challenge
    assert 'ContainsKey("Authorization")' in challenge
    content_type = when.find("set-header[@name='Content-Type']/value").text
    assert content_type == "application/problem+json"
    body = when.find("set-body").text
    for part in ('"title", "Unauthorized"', '"status", 401', '"detail"'):
        assert part in body
    assert "https://errors.orders.example/unauthorized" in body
    errors = REPO / "shared" / "errors.py"
    if errors.exists():
        assert '"unauthorized"' in errors.read_text()


def test_the_tier_has_every_policy_the_api_uses():
    # rate-limit-by-key is not available in the Consumption tier (its policy reference lists
    # Developer, Basic, Basic v2, Standard, Standard v2, Premium); validate-jwt is in all.
    for path, name in ((APP / "apim.bicep", "sku"), (INFRA / "main.bicep", "apimSku")):
        param = parsed(path)["parameters"][name]
        allowed = next(
            d["argument"] for d in param["decorators"] if d["type"] == "allowed"
        )
        assert "Consumption" not in allowed, rel(path)
        assert param["default"] == "BasicV2", rel(path)
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["apimSku"]["value"] == "${APIM_SKU=BasicV2}"
    apim = resource_body(resources(APP / "apim.bicep")["apim"])
    assert render(apim["sku"]["capacity"]) == "skuCapacity"


def test_clients_need_a_token_not_a_subscription_key():
    res = resources(APP / "apim.bicep")
    assert resource_body(res["api"])["properties"]["subscriptionRequired"] is False
    assert not [
        symbol
        for symbol, r in res.items()
        if r["type"] == "Microsoft.ApiManagement/service/subscriptions"
    ]
    assert "AZURE_APIM_SUBSCRIPTION_NAME" not in parsed(INFRA / "main.bicep")["outputs"]


def test_the_policy_gets_the_token_settings_the_function_app_gets():
    # One source for issuer and audiences: main.bicep derives them and passes the same values
    # to API Management (policy placeholders) and to the Function App (AUTH_* settings).
    variables = parsed(APP / "apim.bicep")["variables"]
    text = render(variables["policyXml"]["value"])
    for token, param in (
        ("__AUTH_OPENID_CONFIG_URL__", "authOpenIdConfigUrl"),
        ("__AUTH_ISSUER__", "authIssuer"),
        ("__AUTH_APP_ID_URI__", "authApiAppIdUri"),
        ("__AUTH_CLIENT_ID__", "authApiClientId"),
    ):
        assert f"{token}, {param})" in text, token
    assert "__AUTH_TENANT_ID__, tenant().tenantId)" in text.replace(
        "property_accessor(tenant(), tenantId)", "tenant().tenantId"
    )
    apim_params = main_modules()["apim"]["config"]["params"]
    function_params = main_modules()["functionApp"]["config"]["params"]
    for name in ("authIssuer", "authApiClientId", "authApiAppIdUri"):
        assert apim_params[name] == function_params[name] == name
    assert apim_params["authOpenIdConfigUrl"] == "authOpenIdConfigUrl"
    assert function_params["authJwksUri"] == "authJwksUri"


def test_cors_is_the_first_inbound_policy():
    # API Management's cors reference: placed after other policies (even <base />, which
    # brings in the outer scopes' policies), preflights meet those first.
    root = apim_policy()
    inbound = root.find("inbound")
    assert inbound[0].tag == "cors", [child.tag for child in inbound]
    assert root.findall(".//cors") == [inbound[0]]


def test_api_import_keeps_required_query_parameters_as_query_parameters():
    # The default ('template') turns a required query parameter into a path template
    # segment: a call without it would get API Management's 404, not the app's 400.
    api = resource_body(resources(APP / "apim.bicep")["api"])["properties"]
    assert api["translateRequiredQueryParameters"] == "query"


def test_api_management_sends_no_credential_to_the_function_app():
    # The functions are anonymous at the Functions level and the app validates the caller's
    # Entra token itself: no host key is read (listKeys), stored (named value) or sent.
    res = resources(APP / "apim.bicep")
    backend = resource_body(res["backend"])
    assert backend["name"] == "backendId"
    assert "credentials" not in backend["properties"]
    backend_id = parsed(APP / "apim.bicep")["variables"]["backendId"]["value"]
    assert (
        apim_policy().find("inbound/set-backend-service").get("backend-id")
        == backend_id
    )
    assert not (INFRA / "scripts" / "postdeploy.sh").exists()
    for path in infra_text_files():
        if path.name == "openapi.json":
            continue  # the app's contract, generated from the code (make openapi)
        text = path.read_text().lower()
        assert "functions-key" not in text and "host-key" not in text, rel(path)
    assert (
        "apimBackendCredentialExists" not in parsed(INFRA / "main.bicep")["parameters"]
    )
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert not [name for name in params if "Credential" in name]
    api = resource_body(res["api"])["properties"]
    assert api["format"] == "openapi+json"
    assert render(api["value"]) == "load_text_content(../openapi.json)"


def test_openapi_document_can_be_imported():
    path = INFRA / "openapi.json"
    text = path.read_text()
    assert len(text) < LOAD_TEXT_CONTENT_MAX_CHARS, "too large for loadTextContent()"
    doc = json.loads(text)
    assert str(doc["openapi"]).startswith("3.")
    assert doc["paths"], "no paths"
    # The API's URL suffix (apiPath 'api') and the backend URL (…/api) supply the prefix.
    assert not [p for p in doc["paths"] if p == "/api" or p.startswith("/api/")]


def test_openapi_avoids_what_api_management_cannot_import():
    # Known APIM import gaps with OpenAPI 3.1 (MicrosoftDocs/azure-docs issues 105288 and
    # 119506): numeric exclusiveMinimum/exclusiveMaximum and info.summary fail the import.
    doc = json.loads((INFRA / "openapi.json").read_text())
    assert "summary" not in doc.get("info", {})
    numeric = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(
                    value, bool
                ):
                    numeric.append(f"{where}/{key}={value}")
                visit(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                visit(value, f"{where}/{index}")

    visit(doc, "#")
    # e.g. money "> 0" with at most 2 decimals is exactly "minimum: 0.01".
    assert not numeric, f"numeric exclusive bounds (use minimum/maximum): {numeric}"
