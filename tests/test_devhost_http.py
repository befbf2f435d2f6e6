"""Dev host: settings, indexing, route templates, and HTTP functions over real HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from devtools.devhost.indexing import index_functions, load_app
from devtools.devhost.route_constraints import RouteTemplateError
from devtools.devhost.routing import RouteTable, RouteTemplate, split_path
from devtools.devhost.settings import (
    HostConfig,
    UnresolvedSettingError,
    load_host_config,
    load_local_settings,
    parse_host_config,
    parse_timespan,
    resolve_expression,
)
from tests.devhost_sample.harness import SAMPLE_DIR, HostProcess, copy_sample, wait_for

GUID = "0b7f3a0e-0000-4000-8000-000000000001"

# --- settings ---------------------------------------------------------------------------


def test_local_settings_fill_the_environment_without_overriding(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"A": "from-file", "B": "from-file", "N": 5},
            }
        )
    )
    environ = {"B": "from-env"}
    assert load_local_settings(path, environ) == {"A": "from-file", "N": "5"}
    assert environ == {"A": "from-file", "B": "from-env", "N": "5"}
    assert load_local_settings(tmp_path / "missing.json", environ) == {}


def test_host_json_options(tmp_path: Path) -> None:
    assert (
        load_host_config(tmp_path) == HostConfig()
    )  # no host.json: the host's defaults
    assert (
        HostConfig().route_prefix == "api" and HostConfig().max_event_batch_size == 100
    )
    config = parse_host_config(
        {
            "version": "2.0",
            "Extensions": {
                "HTTP": {"routePrefix": "/v1/"},
                "eventHubs": {"maxEventBatchSize": 7, "maxWaitTime": "00:00:02"},
            },
            "retry": {
                "strategy": "fixedDelay",
                "maxRetryCount": 2,
                "delayInterval": "00:00:03",
            },
        }
    )
    assert (config.route_prefix, config.max_event_batch_size, config.max_wait_time) == (
        "v1",
        7,
        2.0,
    )
    assert config.retry == {
        "strategy": "fixedDelay",
        "maxRetryCount": 2,
        "delayInterval": "00:00:03",
    }
    assert (
        parse_host_config({"extensions": {"http": {"routePrefix": ""}}}).route_prefix
        == ""
    )
    sample = load_host_config(SAMPLE_DIR)
    assert (sample.route_prefix, sample.max_event_batch_size) == ("sample", 3)


def test_binding_expressions_and_timespans() -> None:
    env = {"HUB": "domain-events", "CG": "cg-1"}
    assert resolve_expression("%HUB%", env) == "domain-events"
    assert resolve_expression("%HUB%/%CG%-x", env) == "domain-events/cg-1-x"
    assert resolve_expression("no expression", env) == "no expression"
    with pytest.raises(UnresolvedSettingError, match="MISSING"):
        resolve_expression("%MISSING%", env)
    assert parse_timespan("00:00:05") == 5
    assert parse_timespan("01:02:03.5") == 3723.5
    assert parse_timespan("1.00:00:00") == 86400
    assert parse_timespan("00:10") == 600  # .NET "HH:MM"
    assert parse_timespan("7") == 7
    with pytest.raises(ValueError):
        parse_timespan("soon")


# --- indexing ---------------------------------------------------------------------------


@pytest.fixture
def sample_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[func.FunctionApp]:
    # The repo has its own `function_app` module: import the sample's under that name and
    # put sys.path and sys.modules back afterwards.
    monkeypatch.syspath_prepend(str(SAMPLE_DIR))
    monkeypatch.delitem(sys.modules, "function_app", raising=False)
    yield load_app("function_app:app", SAMPLE_DIR)
    sys.modules.pop("function_app", None)


def test_indexing_resolves_settings_and_honours_disabled(
    sample_app: func.FunctionApp,
) -> None:
    env = {
        "SAMPLE_HUB": "hub-x",
        "SAMPLE_CG_B": "cg-b",
        "AzureWebJobs.eh_one.Disabled": "true",
    }
    functions = {f.name: f for f in index_functions(sample_app, env, SAMPLE_DIR)}
    assert "eh_one" not in functions  # disabled
    assert (
        "tick" not in functions
    )  # %SAMPLE_TIMER_SCHEDULE% unresolved: in error, skipped
    assert functions["eh_b"].trigger["consumerGroup"] == "cg-b"
    assert functions["eh_a"].trigger["eventHubName"] == "hub-x"
    assert (
        functions["eh_a"].retry is not None
        and functions["eh_a"].retry.max_retry_count == 2
    )
    assert functions["eh_a"].retry.delay(1) == 1.0
    assert functions["eh_b"].retry is None and functions["eh_b"].is_async
    assert (
        functions["renamed_function"].wants_context
        and functions["renamed_function"].arg_name == "req"
    )
    assert functions["item_by_id"].trigger["methods"] == ["GET"]
    assert not functions["item_by_id"].is_async and functions["item_delete"].is_async


# --- route templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/items/{id:int}", "/api/items/42", {"id": "42"}),
        ("api/items/{id:int}", "/api/items/-7", {"id": "-7"}),
        ("api/items/{id:int}", "/api/items/2147483648", None),  # beyond int32
        ("api/items/{id:long}", "/api/items/2147483648", {"id": "2147483648"}),
        ("api/items/{id:int}", "/api/items/4x", None),
        ("api/b/{flag:bool}", "/api/b/TRUE", {"flag": "TRUE"}),
        ("api/b/{flag:bool}", "/api/b/yes", None),
        ("api/g/{id:guid}", f"/api/g/{GUID}", {"id": GUID}),
        (
            "api/g/{id:guid}",
            f"/api/g/{GUID.replace('-', '')}",
            {"id": GUID.replace("-", "")},
        ),
        ("api/g/{id:guid}", "/api/g/not-a-guid", None),
        ("api/a/{name:alpha}", "/api/a/Hello", {"name": "Hello"}),
        ("api/a/{name:alpha}", "/api/a/he11o", None),
        ("api/l/{s:minlength(3):maxlength(4)}", "/api/l/abc", {"s": "abc"}),
        ("api/l/{s:minlength(3):maxlength(4)}", "/api/l/abcde", None),
        ("api/l/{s:length(2)}", "/api/l/ab", {"s": "ab"}),
        ("api/l/{s:length(2,3)}", "/api/l/abcd", None),
        ("api/r/{n:range(1,10)}", "/api/r/10", {"n": "10"}),
        ("api/r/{n:range(1,10)}", "/api/r/11", None),
        ("api/r/{n:min(5)}", "/api/r/4", None),
        ("api/r/{n:max(5)}", "/api/r/5", {"n": "5"}),
        ("api/d/{x:decimal}", "/api/d/12.50", {"x": "12.50"}),
        ("api/d/{x:double}", "/api/d/1e3", {"x": "1e3"}),
        ("api/d/{x:decimal}", "/api/d/abc", None),
        (
            "api/t/{x:datetime}",
            "/api/t/2024-05-01T10:00:00",
            {"x": "2024-05-01T10:00:00"},
        ),
        ("api/re/{code:regex(^\\d{{3}}$)}", "/api/re/123", {"code": "123"}),
        ("api/re/{code:regex(^\\d{{3}}$)}", "/api/re/1234", None),
        (
            "api/re/{code:regex(ab)}",
            "/api/re/xABx",
            {"code": "xABx"},
        ),  # unanchored, case-insensitive
        ("api/o/{id?}", "/api/o", {}),
        ("api/o/{id?}", "/api/o/5", {"id": "5"}),
        ("api/o/{page=1}", "/api/o", {"page": "1"}),
        ("api/o/{page=1}", "/api/o/3", {"page": "3"}),
        ("api/f/{*rest}", "/api/f/a/b%2Fc/d", {"rest": "a/b/c/d"}),
        ("api/f/{*rest}", "/api/f", {}),
        ("api/f/{**rest}", "/api/f/x", {"rest": "x"}),
        ("api/c/{name}.{ext}", "/api/c/a.b.txt", {"name": "a.b", "ext": "txt"}),
        ("api/c/{name}.{ext?}", "/api/c/readme", {"name": "readme"}),
        (
            "api/Items/List",
            "/API/items/list/",
            {},
        ),  # literals are case-insensitive; trailing slash ignored
        ("api/items/{id}", "/api/items", None),
        ("api/items/{id}", "/api/items/1/extra", None),
        ("api/sp/{name}", "/api/sp/a%20b", {"name": "a b"}),
        ("", "/", {}),
    ],
)
def test_route_template_matching(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert RouteTemplate(template).match(split_path(path)) == expected


@pytest.mark.parametrize(
    "template",
    [
        "api/{id:nosuch}",
        "api/{*rest}/more",
        "api/{a}{b}",
        "api/{id",
        "api/{id}}",
        "api/{a}/{A}",
        "api/{x:minlength(a)}",
        "api/{*rest?}",
        "api/{x=1?}",
    ],
)
def test_invalid_route_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate(template)


def test_route_precedence_and_methods() -> None:
    table = RouteTable()
    table.add("api/{*path}", None, "fallback")
    table.add("api/items/{id}", ["GET"], "any-id")
    table.add("api/items/{id:int}", ["GET"], "int-id")
    table.add("api/items/new", ["GET"], "literal")
    table.add("api/items/{id:int}", ["DELETE"], "delete")
    table.add("api/orders/{id}", ["GET", "PUT"], "order")

    def target(method: str, path: str) -> object:
        return table.resolve(method, path).target

    assert target("GET", "/api/items/new") == "literal"
    assert target("GET", "/api/items/5") == "int-id"
    assert target("GET", "/api/items/abc") == "any-id"
    assert target("DELETE", "/api/items/5") == "delete"
    assert (
        target("DELETE", "/api/items/abc") == "fallback"
    )  # the catch-all accepts every method
    assert target("GET", "/api/whatever/else") == "fallback"
    assert table.resolve("GET", "/api/items/5").route_params == {"id": "5"}

    narrow = RouteTable()
    narrow.add("api/orders/{id}", ["GET", "PUT"], "order")
    narrow.add("api/orders/{id:int}", ["DELETE"], "delete")
    resolution = narrow.resolve("POST", "/api/orders/5")
    assert resolution.method_not_allowed and resolution.allowed == (
        "DELETE",
        "GET",
        "PUT",
    )
    assert narrow.resolve("POST", "/api/orders/x").allowed == ("GET", "PUT")
    missing = narrow.resolve("GET", "/api/nothing")
    assert not missing.found and not missing.method_not_allowed


# --- over real HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_sample(tmp_path_factory.mktemp("http") / "app")
    (app_dir / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "SAMPLE_FROM_FILE": "file-value",
                    "SAMPLE_OVERRIDDEN": "file-value",
                },
            }
        )
    )
    env = {"SAMPLE_OVERRIDDEN": "env-value"}
    env |= {
        f"AzureWebJobs.{name}.Disabled": "true" for name in ("eh_a", "eh_b", "eh_one")
    }
    process = HostProcess(app_dir, env)
    with process:
        yield process


@pytest.fixture(scope="module")
def client(host: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.base_url, timeout=10) as c:
        yield c


def test_status_and_route_prefix_from_host_json(client: httpx.Client) -> None:
    status = client.get("/admin/host/status")
    assert status.status_code == 200
    assert status.json() == {"state": "Running", "functions": "all"}
    assert client.get("/sample/items/5").status_code == 200
    assert client.get("/api/items/5").status_code == 404


def test_more_specific_template_wins_and_constraints_apply(
    client: httpx.Client,
) -> None:
    assert client.get("/sample/items/special").json() == {"kind": "literal"}
    assert client.get("/sample/items/42").json() == {"kind": "int", "id": "42"}
    assert client.get("/sample/items/abc").json() == {"kind": "alpha", "name": "abc"}
    assert client.get("/sample/ITEMS/42/").json() == {"kind": "int", "id": "42"}
    assert client.get(f"/sample/orders/{GUID}/lines").json() == {"orderId": GUID}
    assert client.get(f"/sample/orders/{GUID}/lines/3").json() == {
        "orderId": GUID,
        "line": "3",
    }
    assert client.get("/sample/orders/nope/lines/3").status_code == 404
    assert client.get(f"/sample/orders/{GUID}/lines/x").status_code == 404
    assert client.get("/sample/status/201").status_code == 201
    assert client.get("/sample/status/700").status_code == 404  # range(200,599)


def test_unmatched_path_is_404_problem(client: httpx.Client) -> None:
    response = client.get("/sample/items/x-1")  # neither int nor alpha
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (
        body["status"] == 404
        and body["title"] == "Not Found"
        and body["type"].endswith("/not-found")
    )
    assert "/sample/items/x-1" in body["detail"]
    assert client.get("/elsewhere").status_code == 404


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.post("/sample/items/5")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        response.json()["status"] == 405
        and response.json()["title"] == "Method Not Allowed"
    )
    assert client.delete("/sample/echo").headers["allow"] == "GET, POST, PUT"


def test_request_query_headers_and_body(
    client: httpx.Client, host: HostProcess
) -> None:
    response = client.post(
        "/sample/echo?a=1&a=2&empty=&b=x%20y",
        content=b'{"hello": "world"}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Multi", "one"),
            ("X-Multi", "two"),
            ("X-Case", "Kept"),
        ],
    )
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["url"] == f"{host.base_url}/sample/echo?a=1&a=2&empty=&b=x%20y"
    assert echo["params"] == {
        "a": "1,2",
        "b": "x y",
    }  # repeated values joined, empty ones dropped
    assert echo["headers"] == {
        "content-type": "application/json",
        "x-multi": "one,two",
        "x-case": "Kept",
    }
    assert echo["body"] == '{"hello": "world"}'
    assert echo["json"] == {"hello": "world"}
    assert echo["route_params"] == {}


def test_sync_functions_run_in_the_pool_and_async_ones_on_the_loop(
    client: httpx.Client,
) -> None:
    assert client.get("/sample/echo").json()["thread"].startswith("function")
    hello = client.get("/sample/async-hello/bob")
    assert hello.text == "hello bob from MainThread"
    deleted = client.delete("/sample/items/7").json()
    assert deleted == {"deleted": "7", "thread": "MainThread"}


def test_catch_all_accepts_every_method_and_the_rest_of_the_path(
    client: httpx.Client,
) -> None:
    assert client.get("/sample/files/a/b%2Fc/d.txt").json() == {
        "path": "a/b/c/d.txt",
        "method": "GET",
    }
    assert client.put("/sample/files/x").json() == {"path": "x", "method": "PUT"}
    assert client.get("/sample/files").json() == {"path": None, "method": "GET"}


def test_response_translation(client: httpx.Client) -> None:
    cookies = client.get("/sample/cookies")
    assert cookies.status_code == 200
    assert cookies.headers["content-type"] == "text/html; charset=latin-1"
    assert cookies.headers["x-custom"] == "yes"
    assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    assert cookies.content == "café".encode("latin-1")
    plain = client.get("/sample/plain")
    assert (plain.status_code, plain.text, plain.headers["content-type"]) == (
        200,
        "just text",
        "text/plain; charset=utf-8",
    )
    assert client.get("/sample/nothing").status_code == 500  # None is not a response
    item = client.get("/sample/items/1")
    assert item.headers["content-type"] == "application/json"
    assert int(item.headers["content-length"]) == len(item.content)


def test_unhandled_exception_is_500_and_logged(
    client: httpx.Client, host: HostProcess
) -> None:
    response = client.get("/sample/boom")
    assert response.status_code == 500
    assert response.content == b""
    log = host.log()
    assert "Executed 'Functions.boom' (Failed)" in log
    assert "RuntimeError: boom on purpose" in log
    assert client.get("/sample/items/1").status_code == 200  # the host keeps serving


def test_context_argument(client: httpx.Client) -> None:
    first, second = (
        client.get("/sample/context").json(),
        client.get("/sample/context").json(),
    )
    assert first["function_name"] == second["function_name"] == "renamed_function"
    assert first["invocation_id"] != second["invocation_id"]


def test_settings_from_local_settings_json_and_environment(
    client: httpx.Client,
) -> None:
    assert client.get("/sample/settings/SAMPLE_FROM_FILE").json() == {
        "value": "file-value"
    }
    assert client.get("/sample/settings/SAMPLE_OVERRIDDEN").json() == {
        "value": "env-value"
    }


def test_one_log_line_per_request(client: httpx.Client, host: HostProcess) -> None:
    client.get("/sample/items/31337")
    client.get("/sample/nothing-here")

    def logged(fragment: str, name: str) -> bool:
        return any(
            fragment in line and name in line for line in host.log().splitlines()
        )

    # The line is written once the response has gone out, so it may trail the response a bit.
    wait_for(
        lambda: logged("GET /sample/items/31337 -> 200 in", "(item_by_id)"),
        5,
        "the request log line",
    )
    wait_for(
        lambda: logged("GET /sample/nothing-here -> 404 in", "(-)"),
        5,
        "the 404 log line",
    )
    assert "Function 'eh_a' is disabled" in host.log()


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    app_dir = copy_sample(tmp_path / "app")
    process = HostProcess(app_dir, {"SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *"}).start()
    try:
        assert process.stop() == 0
        assert "Host stopped" in process.log()
    finally:
        process.kill()
