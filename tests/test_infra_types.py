"""Module arguments stay inside the module's @allowed lists (the Bicep compiler's BCP036).

A parameter declared with `@allowed([...])` (or a literal union type) has the union of those
literals as its type, and Bicep does no flow narrowing: `!empty(x) ? x : y` keeps every value of
x's list in the result, `''` included. Passing such a union to a module parameter whose list
lacks one of its values is a compile error, so `azd provision` stops before deploying anything,
and ARM enforces the same lists at deployment time.

The check below reads every `.bicep` file with tree-sitter-bicep and works out, for every
argument of every module call, the literal values it can take: literals, parameters with an
@allowed list or a literal union type, variables, parentheses and ternaries (nested at any depth).
Those values must all be in the module parameter's list. An argument that is a plain `string`
or `int` (a parameter without a list, a function call, an interpolation) carries no literal
values and is skipped, as the compiler accepts it too.

A small evaluator of the same expressions (comparisons, `&&`, `||`, `!`, `empty()`, ternaries)
also checks what the derived values mean, for every combination of allowed inputs.
"""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

Node = tree_sitter.Node


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


class NotLiteral(Exception):
    """The node is not a literal (or a list of literals)."""


def literal(node: Node) -> Any:
    """The value of a string without interpolation, a number, a boolean, or an array of them."""
    if node.type == "string":
        parts = []
        for child in node.children:
            if child.type == "interpolation":
                raise NotLiteral(node.text.decode())
            if child.type in ("string_content", "escape_sequence"):
                text = child.text.decode()
                parts.append(
                    _unescape(text) if child.type == "escape_sequence" else text
                )
        return "".join(parts)
    if node.type == "number":
        return int(node.text.decode())
    if node.type == "boolean":
        return node.text.decode() == "true"
    if node.type == "unary_expression" and node.children[0].type == "-":
        return -literal(node.named_children[0])
    if node.type == "array":
        return [literal(child) for child in node.named_children]
    raise NotLiteral(node.text.decode())


def _unescape(sequence: str) -> str:
    return {
        "\\'": "'",
        "\\\\": "\\",
        "\\n": "\n",
        "\\r": "\r",
        "\\t": "\t",
        "\\$": "$",
    }[sequence]


def _identifier(node: Node) -> str:
    return next(c for c in node.children if c.type == "identifier").text.decode()


def _expression(declaration: Node) -> Node:
    """The expression after `=` in a param/var/output declaration."""
    children = declaration.children
    index = next(i for i, c in enumerate(children) if c.type == "=")
    return children[index + 1]


def _union_literals(node: Node, types: dict[str, Node]) -> frozenset | None:
    """The literals of a union type (`'a' | 'b'`), through a type alias; None otherwise."""
    if node.type == "type":
        return _union_literals(node.named_children[0], types)
    if node.type == "identifier" and node.text.decode() in types:
        return _union_literals(types[node.text.decode()], types)
    if node.type == "union_type":
        try:
            return frozenset(literal(member) for member in node.named_children)
        except NotLiteral:
            return None
    return None


@dataclass
class ModuleCall:
    symbol: str
    target: Path | None  # None: a registry module
    arguments: dict[str, Node]
    line: int


@dataclass
class BicepFile:
    path: Path
    allowed: dict[str, frozenset | None] = field(default_factory=dict)
    param_types: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Node] = field(default_factory=dict)
    variables: dict[str, Node] = field(default_factory=dict)
    modules: list[ModuleCall] = field(default_factory=list)
    resources: dict[str, Node] = field(default_factory=dict)  # symbol -> body object
    outputs: dict[str, Node] = field(default_factory=dict)


def _decorator(decorators: Node | None, name: str) -> Node | None:
    """The argument of `@name(...)` among the decorators of a declaration."""
    if decorators is None:
        return None
    for decorator in decorators.named_children:
        call = decorator.named_children[0]
        if call.type == "call_expression" and _identifier(call) == name:
            arguments = next(c for c in call.children if c.type == "arguments")
            return arguments.named_children[0]
    return None


def _object_properties(node: Node) -> dict[str, Node]:
    found = {}
    for prop in node.named_children:
        if prop.type != "object_property":
            continue
        key, value = prop.named_children[0], prop.named_children[-1]
        found[literal(key) if key.type == "string" else key.text.decode()] = value
    return found


def _declaration_body(node: Node) -> Node:
    """The object of a module or resource, looking through `if (...)` and `[for ...]`."""
    body = _expression(node)
    while body.type != "object":
        body = next(
            c for c in body.named_children if c.type in ("object", "if_statement")
        )
    return body


def parse_bicep(path: Path, source: bytes | None = None) -> BicepFile:
    tree = _parser().parse(source if source is not None else path.read_bytes())
    result = BicepFile(path)
    types = {
        _identifier(node): _expression(node)
        for node in tree.root_node.children
        if node.type == "type_declaration"
    }
    decorators = None
    for node in tree.root_node.children:
        if node.type == "decorators":
            decorators = node
            continue
        if node.type == "parameter_declaration":
            name = _identifier(node)
            type_node = next(c for c in node.children if c.type == "type")
            allowed = _decorator(decorators, "allowed")
            if allowed is not None:
                result.allowed[name] = frozenset(literal(allowed))
            else:
                result.allowed[name] = _union_literals(type_node, types)
            result.param_types[name] = type_node.text.decode()
            if any(c.type == "=" for c in node.children):
                result.defaults[name] = _expression(node)
        elif node.type == "variable_declaration":
            result.variables[_identifier(node)] = _expression(node)
        elif node.type == "module_declaration":
            reference = literal(next(c for c in node.children if c.type == "string"))
            target = None if ":" in reference else (path.parent / reference).resolve()
            params = _object_properties(_declaration_body(node)).get("params")
            arguments = _object_properties(params) if params is not None else {}
            result.modules.append(
                ModuleCall(
                    _identifier(node), target, arguments, node.start_point[0] + 1
                )
            )
        elif node.type == "resource_declaration":
            result.resources[_identifier(node)] = _declaration_body(node)
        elif node.type == "output_declaration":
            result.outputs[_identifier(node)] = _expression(node)
        decorators = None
    return result


@cache
def bicep(path: Path) -> BicepFile:
    return parse_bicep(path)


# ---------------------------------------------------------------------------------------
# The literal values an expression can take (its type, as far as literal unions go)


@dataclass(frozen=True)
class Values:
    known: frozenset  # literal values the expression can take
    open: bool  # it can also take values no literal names (a plain string, a call...)


OPEN = Values(frozenset(), True)


def possible_values(
    node: Node, file: BicepFile, _seen: frozenset = frozenset()
) -> Values:
    if node.type == "parenthesized_expression":
        return possible_values(node.named_children[0], file, _seen)
    if node.type == "ternary_expression":
        _condition, when_true, when_false = node.named_children
        a = possible_values(when_true, file, _seen)
        b = possible_values(when_false, file, _seen)
        return Values(a.known | b.known, a.open or b.open)
    if node.type == "identifier":
        name = node.text.decode()
        if name in file.allowed:
            allowed = file.allowed[name]
            return OPEN if allowed is None else Values(allowed, False)
        if name in file.variables and name not in _seen:
            return possible_values(file.variables[name], file, _seen | {name})
        return OPEN
    try:
        value = literal(node)
    except NotLiteral:
        return OPEN
    return OPEN if isinstance(value, list) else Values(frozenset({value}), False)


def argument_violations(file: BicepFile) -> tuple[list[str], list[str]]:
    """(violations, checked): module arguments with values outside the module's list."""
    violations, checked = [], []
    for call in file.modules:
        if call.target is None:
            continue
        module = bicep(call.target)
        for name, expression in call.arguments.items():
            allowed = module.allowed.get(name)
            if allowed is None:
                continue
            values = possible_values(expression, file)
            if not values.known:
                continue
            where = f"{file.path.name}:{call.line} module {call.symbol}, {name}"
            checked.append(where)
            extra = values.known - allowed
            if extra:
                violations.append(
                    f"{where}: {sorted(map(repr, extra))} not in {sorted(map(repr, allowed))}"
                )
    return violations, checked


# ---------------------------------------------------------------------------------------
# The module calls of infra/


def test_every_module_argument_fits_the_module_allowed_values():
    violations, checked = [], []
    for path in BICEP_FILES:
        found, seen = argument_violations(bicep(path))
        violations += found
        checked += seen
    assert not violations, "\n".join(violations)
    # The check must have had something to check: the known literal-union arguments.
    for expected in ("sql, adminPrincipalType", "rbac, userPrincipalType", "apim, sku"):
        assert any(expected in where for where in checked), (expected, checked)


def test_every_module_call_is_parsed():
    main = bicep(INFRA / "main.bicep")
    assert {call.symbol for call in main.modules} >= {"sql", "rbac", "apim", "cosmos"}
    for call in main.modules:
        assert call.target is not None and call.target.exists(), call.symbol
        assert call.arguments, f"no params parsed for module {call.symbol}"
        assert set(call.arguments) <= set(bicep(call.target).allowed), call.symbol


def test_sql_admin_type_is_a_union_of_the_module_values_only():
    main = bicep(INFRA / "main.bicep")
    sql = next(call for call in main.modules if call.symbol == "sql")
    values = possible_values(sql.arguments["adminPrincipalType"], main)
    assert values == Values(frozenset({"User", "Group", "Application"}), False)


# ---------------------------------------------------------------------------------------
# The check can fail: the pattern that broke the build, and its variants


MODULE = b"""
@allowed([
  'User'
  'Group'
  'Application'
])
param adminPrincipalType string = 'User'
@allowed([
  512
  2048
])
param memory int = 2048
param free string
"""


def check_source(tmp_path: Path, main: str) -> list[str]:
    (tmp_path / "module.bicep").write_bytes(MODULE)
    path = tmp_path / "main.bicep"
    path.write_text(main)
    violations, _ = argument_violations(parse_bicep(path))
    return violations


HEADER = """
@allowed([
  ''
  'User'
  'Group'
  'Application'
])
param sqlAdminPrincipalType string = ''
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'
param anything string
"""


def call(arguments: str) -> str:
    return f"module m 'module.bicep' = {{\n  name: 'm'\n  params: {{\n{arguments}\n  }}\n}}\n"


def test_the_check_refuses_the_empty_choice_kept_by_a_ternary(tmp_path: Path):
    # The code issue 9 reported: '' survives `!empty(x) ? x : ...`.
    main = HEADER + (
        "var sqlAdminType = !empty(sqlAdminPrincipalType) ? sqlAdminPrincipalType"
        " : (principalType == 'ServicePrincipal' ? 'Application' : 'User')\n"
    )
    violations = check_source(
        tmp_path, main + call("    adminPrincipalType: sqlAdminType\n    free: 'x'")
    )
    assert len(violations) == 1 and "''" in violations[0], violations


@pytest.mark.parametrize(
    "argument",
    [
        "sqlAdminPrincipalType",  # the parameter itself
        "(principalType)",  # a list with other values
        "true ? 'User' : (false ? 'Group' : (anything == 'x' ? 'Admin' : 'User'))",
        "'Owner'",
        "v2",  # a variable through a variable
    ],
)
def test_the_check_refuses_values_outside_the_list(tmp_path: Path, argument: str):
    main = HEADER + "var v1 = principalType\nvar v2 = (true ? v1 : 'User')\n"
    assert check_source(tmp_path, main + call(f"    adminPrincipalType: {argument}"))


@pytest.mark.parametrize(
    "argument",
    [
        "'Group'",
        "anything",  # a plain string: not a literal union, the compiler accepts it
        "toLower(anything)",
        "empty(anything) ? 'User' : ((principalType == 'User') ? 'Group' : 'Application')",
    ],
)
def test_the_check_accepts_values_inside_the_list(tmp_path: Path, argument: str):
    assert not check_source(
        tmp_path, HEADER + call(f"    adminPrincipalType: {argument}")
    )


def test_the_check_covers_integer_lists(tmp_path: Path):
    assert check_source(tmp_path, HEADER + call("    memory: true ? 2048 : 1024"))
    assert not check_source(tmp_path, HEADER + call("    memory: true ? 2048 : 512"))


def test_the_check_looks_into_conditional_and_looped_modules(tmp_path: Path):
    conditional = "module c 'module.bicep' = if (true) {\n  name: 'c'\n  params: {\n    adminPrincipalType: 'Nobody'\n  }\n}\n"
    looped = "module l 'module.bicep' = [for i in range(0, 2): {\n  name: 'l${i}'\n  params: {\n    adminPrincipalType: 'Nobody'\n  }\n}]\n"
    assert len(check_source(tmp_path, HEADER + conditional + looped)) == 2


# ---------------------------------------------------------------------------------------
# What the derived values mean, for every combination of allowed inputs


def evaluate(node: Node, file: BicepFile, env: dict[str, Any]) -> Any:
    """Evaluate the expression subset the templates use to derive values from parameters."""
    kind = node.type
    if kind == "parenthesized_expression":
        return evaluate(node.named_children[0], file, env)
    if kind == "ternary_expression":
        condition, when_true, when_false = node.named_children
        chosen = when_true if evaluate(condition, file, env) else when_false
        return evaluate(chosen, file, env)
    if kind == "binary_expression":
        left, right = node.named_children
        operator = node.children[1].type
        if operator == "&&":
            return evaluate(left, file, env) and evaluate(right, file, env)
        if operator == "||":
            return evaluate(left, file, env) or evaluate(right, file, env)
        a, b = evaluate(left, file, env), evaluate(right, file, env)
        return {"==": a == b, "!=": a != b}[operator]
    if kind == "unary_expression" and node.children[0].type == "!":
        return not evaluate(node.named_children[0], file, env)
    if kind == "call_expression":
        name = _identifier(node)
        arguments = next(
            c for c in node.children if c.type == "arguments"
        ).named_children
        values = [evaluate(a, file, env) for a in arguments]
        if callable(env.get(name)):  # tenant(), environment(), loadTextContent()...
            return env[name](*values)
        functions = {
            "empty": lambda value: not value,
            "max": max,
            "min": min,
            "split": lambda text, separator: text.split(separator),
            "json": json.loads,
            "replace": lambda text, old, new: text.replace(old, new),
            "string": str,
            "join": lambda items, separator: separator.join(items),
        }
        return functions[name](*values)
    if kind == "member_expression":
        target, member = node.named_children
        return evaluate(target, file, env)[member.text.decode()]
    if kind == "subscript_expression":
        target, index = node.named_children
        return evaluate(target, file, env)[evaluate(index, file, env)]
    if kind == "null":
        return None
    if kind == "object":
        found = {}
        for prop in node.named_children:
            if prop.type == "object_property":
                key, value = prop.named_children[0], prop.named_children[-1]
                name = (
                    key.text.decode()
                    if key.type == "identifier"
                    else evaluate(key, file, env)
                )
                found[name] = evaluate(value, file, env)
        return found
    if kind == "array":
        return [evaluate(item, file, env) for item in node.named_children]
    if kind == "string":
        parts = []
        for child in node.children:
            if child.type == "interpolation":
                parts.append(str(evaluate(child.named_children[0], file, env)))
            elif child.type == "string_content":
                parts.append(child.text.decode())
            elif child.type == "escape_sequence":
                parts.append(_unescape(child.text.decode()))
        return "".join(parts)
    if kind == "identifier":
        name = node.text.decode()
        if name in env:
            return env[name]
        if name in file.variables:
            return evaluate(file.variables[name], file, env)
        raise KeyError(f"{name} is not bound")
    return literal(node)


def test_sql_admin_type_follows_the_documented_rule():
    main = bicep(INFRA / "main.bicep")
    expression = main.variables["sqlAdminType"]
    for admin, deployer in itertools.product(
        sorted(main.allowed["sqlAdminPrincipalType"]),
        sorted(main.allowed["principalType"]),
    ):
        env = {"sqlAdminPrincipalType": admin, "principalType": deployer}
        expected = admin or (
            "Application" if deployer == "ServicePrincipal" else "User"
        )
        assert evaluate(expression, main, env) == expected, env


def test_sql_sku_name_tier_and_family_agree_for_every_allowed_name():
    sql = bicep(INFRA / "app" / "sql.bicep")
    main = bicep(INFRA / "main.bicep")
    names = sql.allowed["databaseSkuName"]
    assert names and main.allowed["sqlDatabaseSkuName"] == names
    assert set(evaluate(sql.variables["skus"], sql, {})) == names, "mapping != @allowed"
    database = _object_properties(sql.resources["database"])
    properties = _object_properties(database["properties"])
    tiers = {"GP": "GeneralPurpose", "BC": "BusinessCritical", "HS": "Hyperscale"}
    for name, vcores in itertools.product(sorted(names), (1, 2, 4)):
        env = {
            "databaseSkuName": name,
            "databaseMaxVCores": vcores,
            "autoPauseDelay": 60,
        }
        sku = evaluate(database["sku"], sql, env)
        serverless = "_S_" in name
        assert sku["name"] == name
        assert sku["tier"] == tiers[name.split("_")[0]], sku
        assert sku["family"] == name.split("_")[-1], sku
        # Provisioned vCore databases start at 2 vCores; serverless at 1 (min 0.5).
        assert sku["capacity"] == max(vcores, 1 if serverless else 2), sku
        pause = evaluate(properties["autoPauseDelay"], sql, env)
        minimum = evaluate(properties["minCapacity"], sql, env)
        assert (pause, minimum) == ((60, 0.5) if serverless else (None, None)), name


@pytest.mark.parametrize(
    "endpoint, host",
    [
        ("https://ns1.servicebus.windows.net:443/", "ns1.servicebus.windows.net"),
        (
            "https://ns1.servicebus.chinacloudapi.cn:443/",
            "ns1.servicebus.chinacloudapi.cn",
        ),
        (
            "https://ns1.servicebus.usgovcloudapi.net/",
            "ns1.servicebus.usgovcloudapi.net",
        ),
    ],
)
def test_event_hubs_host_comes_from_the_namespace_endpoint(endpoint: str, host: str):
    eventhubs = bicep(INFRA / "app" / "eventhubs.bicep")
    env = {"namespace": {"properties": {"serviceBusEndpoint": endpoint}}}
    assert (
        evaluate(eventhubs.outputs["fullyQualifiedNamespace"], eventhubs, env) == host
    )


def test_sql_server_has_the_identity_that_resolves_users_for_a_service_principal():
    sql = bicep(INFRA / "app" / "sql.bicep")
    server = _object_properties(sql.resources["server"])
    primary = _object_properties(server["properties"])["primaryUserAssignedIdentityId"]
    assert evaluate(server["identity"], sql, {"serverIdentityId": ""}) == {
        "type": "SystemAssigned"
    }
    assert evaluate(primary, sql, {"serverIdentityId": ""}) is None
    uami = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sql"
    assert evaluate(server["identity"], sql, {"serverIdentityId": uami}) == {
        "type": "UserAssigned",
        "userAssignedIdentities": {uami: {}},
    }
    assert evaluate(primary, sql, {"serverIdentityId": uami}) == uami
    # The principal id an administrator grants the Graph permissions to reaches azd's env.
    env = {"serverIdentityId": "", "server": {"identity": {"principalId": "p-1"}}}
    assert evaluate(sql.outputs["identityPrincipalId"], sql, env) == "p-1"
    main = bicep(INFRA / "main.bicep")
    output = main.outputs["AZURE_SQL_SERVER_IDENTITY_PRINCIPAL_ID"]
    assert output.text.decode() == "sql.outputs.identityPrincipalId"


def test_backend_points_at_the_function_app_without_a_credential():
    # The app validates the caller's Entra token; API Management forwards the request as is.
    apim = bicep(INFRA / "app" / "apim.bicep")
    backend = _object_properties(apim.resources["backend"])
    properties = _object_properties(backend["properties"])
    assert "credentials" not in properties
    env = {"functionApp": {"properties": {"defaultHostName": "func-1.example"}}}
    assert evaluate(properties["url"], apim, env) == "https://func-1.example/api"
    assert "backendCredentialExists" not in apim.allowed


# ---------------------------------------------------------------------------------------
# Microsoft Entra token settings: the Function App's and API Management's, from one place

TENANT = "72f988bf-0000-4000-8000-000000000001"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def cloud(login_endpoint: str) -> dict[str, Any]:
    """What tenant() and environment() return in a cloud with this login endpoint."""
    return {
        "tenant": lambda: {"tenantId": TENANT},
        "environment": lambda: {"authentication": {"loginEndpoint": login_endpoint}},
    }


@pytest.mark.parametrize(
    "login",
    [
        "https://login.microsoftonline.com/",
        "https://login.chinacloudapi.cn/",
        "https://login.microsoftonline.us/",
    ],
)
def test_token_settings_name_the_tenant_v2_endpoints(login: str):
    main = bicep(INFRA / "main.bicep")
    env = cloud(login)
    issuer = evaluate(main.variables["authIssuer"], main, env)
    assert issuer == f"{login}{TENANT}/v2.0"  # the iss of v2.0 access tokens
    assert (
        evaluate(main.variables["authJwksUri"], main, env)
        == f"{login}{TENANT}/discovery/v2.0/keys"
    )
    assert (
        evaluate(main.variables["authOpenIdConfigUrl"], main, env)
        == f"{login}{TENANT}/v2.0/.well-known/openid-configuration"
    )


def test_the_audience_setting_holds_the_app_id_uri_and_the_client_id():
    function = bicep(INFRA / "app" / "function.bicep")
    env = {"authApiAppIdUri": f"api://{CLIENT_ID}", "authApiClientId": CLIENT_ID}
    audience = evaluate(function.variables["authAudience"], function, env)
    assert audience.split(",") == [f"api://{CLIENT_ID}", CLIENT_ID]
    assert function.outputs["authAudience"].text.decode() == "authAudience"


def test_the_policy_bicep_renders_is_well_formed_and_complete():
    # The policy exactly as apim.bicep assembles it (its replace() calls), for sample values:
    # no placeholder left over, the XML well-formed, the token settings where they belong.
    apim = bicep(INFRA / "app" / "apim.bicep")
    main = bicep(INFRA / "main.bicep")
    env = cloud("https://login.microsoftonline.com/")
    issuer = evaluate(main.variables["authIssuer"], main, env)
    env |= {
        "loadTextContent": lambda name: (INFRA / "app" / name).read_text(),
        "originElements": ["<origin>https://shop.example</origin>"],
        "rateLimitCalls": 300,
        "rateLimitPeriodSeconds": 60,
        "authOpenIdConfigUrl": evaluate(
            main.variables["authOpenIdConfigUrl"], main, env
        ),
        "authIssuer": issuer,
        "authApiAppIdUri": f"api://{CLIENT_ID}",
        "authApiClientId": CLIENT_ID,
    }
    xml = evaluate(apim.variables["policyXml"], apim, env)
    assert not re.findall(r"__[A-Z_]+__", xml), "placeholder left in the policy"
    root = ET.fromstring(xml)
    jwt = root.find("inbound/choose/otherwise/validate-jwt")
    assert jwt.find("issuers/issuer").text == issuer
    assert [a.text for a in jwt.findall("audiences/audience")] == [
        f"api://{CLIENT_ID}",
        CLIENT_ID,
    ]
    assert jwt.find("required-claims/claim/value").text == TENANT
    assert (
        root.find("inbound/cors/allowed-origins/origin").text == "https://shop.example"
    )
