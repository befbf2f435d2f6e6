"""The azd hooks against stub CLIs: which commands they run, as whom, and how they fail.

infra/scripts/postprovision.sh opens the SQL firewall through ARM as whoever is signed in
(azd, else the Azure CLI), then creates the app's database user with sqlcmd and runs the
migrations. Each test puts stub `az`, `azd`, `curl`, `sqlcmd` and `python` programs (or only
some of them: a missing one is a CLI that is not installed) first on an isolated PATH, runs
the script and asserts on the calls the stubs recorded and on the exit code. The stubs answer
ARM and Microsoft Graph requests like the services would, as a scenario says.
tests/test_infra_preprovision.py uses the same stubs for the preprovision hook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "infra" / "scripts"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

# The real programs the hooks need besides the CLIs; nothing else from the machine's PATH,
# so an Azure CLI or azd installed here cannot answer in place of a stub.
SYSTEM_TOOLS = (
    "bash",
    "env",
    "mktemp",
    "rm",
    "cat",
    "grep",
    "dirname",
    "sleep",
    "python3",
)

STUB = r'''
import json, os, sys
from pathlib import Path

work = Path(os.environ["STUB_WORK"])
scenario = json.loads((work / "scenario.json").read_text())
tool = Path(sys.argv[0]).name
args = sys.argv[1:]
record = {"tool": tool, "args": args}


def option(name):
    return args[args.index(name) + 1] if name in args else None


def count(name):
    path = work / "counters.json"
    counters = json.loads(path.read_text()) if path.exists() else {}
    counters[name] = counters.get(name, 0) + 1
    path.write_text(json.dumps(counters))
    return counters[name]


def arm(method, url):
    """(ok, body) as Azure Resource Manager would answer, per the scenario."""
    error = lambda code: (False, json.dumps({"error": {"code": code, "message": code}}))
    if "api-version=" not in url or "/subscriptions/" not in url:
        return error("InvalidRequest")
    if method == "PUT" and "/firewallRules/AllowDeployerClientIp" in url:
        return error("AuthorizationFailed") if scenario.get("firewall_refused") else (True, "{}")
    return error("UnexpectedStubCall")


APP_ID = "11111111-2222-3333-4444-555555555555"


def graph(method, url, prefer):
    """(ok, body) as Microsoft Graph would answer, per the scenario; the directory's state
    (does the app exist) lives in a file, so a re-run of the hook finds what it created."""
    error = lambda code: (False, json.dumps({"error": {"code": code, "message": code}}))
    if "/v1.0/" not in url:
        return error("BadRequest")
    state_file = work / "directory.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {
        "app": bool(scenario.get("app_exists")),
        "sp": bool(scenario.get("app_exists")),
    }
    path = url.split("?")[0]
    answer = error("UnexpectedStubCall")
    if "/applications(uniqueName=" in path and method == "PATCH":
        if scenario.get("graph_refused"):
            answer = error("Authorization_RequestDenied")
        elif state["app"]:
            answer = (True, "")  # 204 No Content
        elif prefer == "create-if-missing":
            state["app"] = True
            answer = (True, json.dumps({"id": "object-1", "appId": APP_ID}))
        else:
            answer = error("Request_ResourceNotFound")
    elif "/applications(uniqueName=" in path and method == "GET":
        if not state["app"] or count("app_get") <= scenario.get("app_reads_missing", 0):
            answer = error("Request_ResourceNotFound")
        else:
            answer = (True, json.dumps({"id": "object-1", "appId": APP_ID, "identifierUris": []}))
    elif f"/servicePrincipals(appId='{APP_ID}')" in path and method == "PATCH":
        if count("sp_upsert") <= scenario.get("sp_failures", 0):
            answer = error("Request_BadRequest")  # the new app has not replicated yet
        elif prefer == "create-if-missing" or state["sp"]:
            state["sp"] = True
            answer = (True, "")
    state_file.write_text(json.dumps(state))
    return answer


def body_of(reference):
    if reference and reference.startswith("@"):
        return Path(reference[1:]).read_text()
    return reference


def finish(code, out="", err=""):
    with open(work / "calls.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)


if tool == "az":
    if args[:2] == ["account", "show"]:
        if scenario.get("az_signed_in"):
            finish(0, json.dumps({"id": "az-default-subscription"}))
        finish(1, err="Please run 'az login' to setup account.\n")
    if args[:1] == ["rest"]:
        record["method"], record["url"] = option("--method"), option("--url")
        record["body"] = body_of(option("--body"))
        record["headers"] = option("--headers")
        if "graph.microsoft.com" in record["url"]:
            prefer = (record["headers"] or "").removeprefix("Prefer=") or None
            ok, body = graph(record["method"], record["url"], prefer)
        else:
            ok, body = arm(record["method"], record["url"])
        finish(0, body) if ok else finish(1, err=f"Bad Request({body})\n")
    # Any other command: what az does signed out, or nothing.
    if not scenario.get("az_signed_in"):
        finish(1, err="ERROR: Please run 'az login' to setup account.\n")
    finish(0)

if tool == "azd":
    if args[:2] == ["auth", "token"]:
        if scenario.get("azd_signed_in"):
            finish(0, json.dumps({"token": "AZD-TOKEN-123", "expiresOn": "2030-01-01T00:00:00Z"}))
        finish(1, err="ERROR: not logged in, run `azd auth login` to login\n")
    if args[:2] == ["env", "get-values"]:
        if scenario.get("azd_env"):
            finish(0)  # an azd environment whose values the hook already has
        finish(1, err="ERROR: no environment exists\n")
    if args[:2] == ["env", "set"]:
        finish(1, err="ERROR: env set failed\n") if scenario.get("azd_env_set_fails") else finish(0)
    finish(2, err="azd stub: unexpected command\n")

if tool == "curl":
    url = next(a for a in args if a.startswith("https://"))
    record["url"] = url
    if "api.ipify.org" in url:
        ip = scenario.get("ip", "203.0.113.7")
        finish(0, ip) if ip else finish(6, err="curl: (6) Could not resolve host\n")
    record["stdin"] = sys.stdin.read() if "--config" in args else ""
    record["method"] = option("--request")
    record["body"] = body_of(option("--data-binary"))
    record["headers"] = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--header"]
    if "graph.microsoft.com" in url:
        prefer = next((h.split(": ", 1)[1] for h in record["headers"] if h.startswith("Prefer: ")), None)
        ok, body = graph(record["method"], url, prefer)
    else:
        ok, body = arm(record["method"], url)
    finish(0, body) if ok else finish(22, body, "curl: (22) The requested URL returned error: 400\n")

if tool == "sqlcmd":
    if args == ["--help"]:
        finish(0, "  --authentication-method\n")
    finish(scenario.get("sqlcmd_exit", 0), err="Msg 33134\n" if scenario.get("sqlcmd_exit") else "")

if tool == "python":
    record["env"] = {k: os.environ.get(k) for k in ("SQL_SERVER", "SQL_DATABASE", "SQL_CONNECTION_STRING")}
    finish(0)

finish(2, err=f"unknown stub {tool}\n")
'''


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]

    def of(self, tool: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["tool"] == tool]

    def graph_calls(self) -> list[tuple[str, str, str]]:
        """(cli, method, url) of every Microsoft Graph request, in order."""
        return [
            (c["tool"], c["method"], c["url"])
            for c in self.calls
            if c.get("method") and "graph.microsoft.com" in c.get("url", "")
        ]

    def arm_calls(self) -> list[tuple[str, str, str]]:
        """(cli, method, url) of every ARM request, in order."""
        return [
            (c["tool"], c["method"], c["url"])
            for c in self.calls
            if c.get("method") and "management.azure.com" in c.get("url", "")
        ]


class Stubs:
    """A PATH of stub CLIs plus the real system tools, and a scenario they act out."""

    def __init__(self, tmp_path: Path):
        self.work = tmp_path
        self.bin = tmp_path / "stubs"
        self.system = tmp_path / "system"
        self.bin.mkdir()
        self.system.mkdir()
        stub = tmp_path / "stub.py"
        stub.write_text(f"#!{sys.executable}\n" + STUB)
        stub.chmod(0o755)
        self.stub = stub
        for tool in SYSTEM_TOOLS:
            # The interpreter running the tests, not a version manager's shim.
            found = sys.executable if tool == "python3" else shutil.which(tool)
            assert found, f"{tool} is needed to run the hooks"
            (self.system / tool).symlink_to(os.path.realpath(found))

    def install(self, *tools: str) -> Stubs:
        for tool in tools:
            (self.bin / tool).symlink_to(self.stub)
        return self

    def run(self, script: str, scenario: dict[str, Any], env: dict[str, str]) -> Run:
        (self.work / "scenario.json").write_text(json.dumps(scenario))
        log = self.work / "calls.jsonl"
        log.unlink(missing_ok=True)
        (self.work / "counters.json").unlink(missing_ok=True)
        full_env = {
            "PATH": f"{self.bin}:{self.system}",
            "HOME": str(self.work),
            "STUB_WORK": str(self.work),
            **env,
        }
        result = subprocess.run(
            [BASH, str(SCRIPTS / script)],
            check=False,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        calls = (
            [json.loads(line) for line in log.read_text().splitlines()]
            if log.exists()
            else []
        )
        return Run(result.returncode, result.stdout, result.stderr, calls)


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    return Stubs(tmp_path)


SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
OUTPUTS = {
    "SQL_SERVER": "sql-test.database.windows.net",
    "SQL_DATABASE": "orders",
    "AZURE_FUNCTION_IDENTITY_NAME": "id-api-test",
    "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_SQL_SERVER_NAME": "sql-test",
    "AZURE_TENANT_ID": "tenant-1",
    "AZURE_SQL_SERVER_IDENTITY_PRINCIPAL_ID": "sql-identity-principal",
}
RULE = (
    f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-test"
    "/providers/Microsoft.Sql/servers/sql-test/firewallRules/AllowDeployerClientIp"
    "?api-version=2023-08-01"
)
RULE_BODY = {
    "properties": {"startIpAddress": "203.0.113.7", "endIpAddress": "203.0.113.7"}
}


def postprovision(stubs: Stubs, scenario: dict[str, Any], **env: str) -> Run:
    merged = {**OUTPUTS, "SQLCMD": "sqlcmd", "PYTHON": "python", **env}
    return stubs.run(
        "postprovision.sh", scenario, {k: v for k, v in merged.items() if v}
    )


def assert_user_created_and_migrated(run: Run) -> None:
    (grant,) = [c for c in run.of("sqlcmd") if c["args"] != ["--help"]]
    args = grant["args"]
    assert args[args.index("-S") + 1] == "sql-test.database.windows.net"
    assert args[args.index("--authentication-method") + 1] == "ActiveDirectoryDefault"
    assert args[args.index("-v") + 1] == "APP_IDENTITY_NAME=id-api-test"
    (migrate,) = run.of("python")
    assert migrate["args"] == ["-m", "shared.sql.migrate"]
    assert migrate["env"]["SQL_SERVER"] == "sql-test.database.windows.net"


def test_only_azd_signed_in_opens_the_firewall_with_the_azd_token(stubs: Stubs):
    # The case issue 9 reported: azd up with no Azure CLI login.
    run = postprovision(
        stubs.install("azd", "curl", "sqlcmd", "python"), {"azd_signed_in": True}
    )
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == [("curl", "PUT", RULE)]
    (put,) = [c for c in run.of("curl") if c.get("method") == "PUT"]
    assert json.loads(put["body"]) == RULE_BODY
    # The token reaches curl on its standard input, never on its command line.
    assert 'header = "Authorization: Bearer AZD-TOKEN-123"' in put["stdin"]
    assert not any("AZD-TOKEN-123" in a for c in run.calls for a in c["args"])
    (token,) = {
        tuple(c["args"]) for c in run.of("azd") if c["args"][:2] == ["auth", "token"]
    }
    assert token[token.index("--tenant-id") + 1] == "tenant-1"
    assert_user_created_and_migrated(run)


def test_az_signed_in_opens_the_firewall_in_the_deployment_subscription(stubs: Stubs):
    run = postprovision(
        stubs.install("az", "curl", "sqlcmd", "python"), {"az_signed_in": True}
    )
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == [("az", "PUT", RULE)]  # the subscription is in the URL
    (put,) = [c for c in run.of("az") if c["args"][:1] == ["rest"]]
    assert json.loads(put["body"]) == RULE_BODY
    assert_user_created_and_migrated(run)


def test_az_installed_but_signed_out_skips_the_firewall_with_a_message(stubs: Stubs):
    # Before the fix, `az sql server firewall-rule create` failed here and, under
    # `set -euo pipefail`, aborted the hook before the user was created.
    run = postprovision(
        stubs.install("az", "curl", "sqlcmd", "python"), {"az_signed_in": False}
    )
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == []
    assert "not opening the SQL firewall" in run.stderr
    assert "neither azd nor the Azure CLI is signed in" in run.stderr
    assert "SQL_CLIENT_IP" in run.stderr
    assert_user_created_and_migrated(run)


def test_azd_signed_out_falls_back_to_a_signed_in_az(stubs: Stubs):
    tools = stubs.install("azd", "az", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": False, "az_signed_in": True})
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == [("az", "PUT", RULE)]


def test_azd_is_preferred_and_az_can_be_forced(stubs: Stubs):
    tools = stubs.install("azd", "az", "curl", "sqlcmd", "python")
    both = {"azd_signed_in": True, "az_signed_in": True}
    assert postprovision(tools, both).arm_calls() == [("curl", "PUT", RULE)]
    assert postprovision(tools, both, ARM_CLI="az").arm_calls() == [("az", "PUT", RULE)]


def test_no_cli_installed_skips_the_firewall_and_still_creates_the_user(stubs: Stubs):
    run = postprovision(stubs.install("curl", "sqlcmd", "python"), {})
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == []
    assert "not opening the SQL firewall" in run.stderr
    assert_user_created_and_migrated(run)


def test_without_the_subscription_the_firewall_is_skipped_before_any_login(
    stubs: Stubs,
):
    tools = stubs.install("azd", "az", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": True}, AZURE_SUBSCRIPTION_ID="")
    assert run.returncode == 0, run.stderr
    assert "AZURE_SUBSCRIPTION_ID not set" in run.stderr
    assert not [c for c in run.calls if c["tool"] in ("az", "curl")]
    assert_user_created_and_migrated(run)


def test_firewall_opt_out_calls_no_cli(stubs: Stubs):
    tools = stubs.install("azd", "az", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": True}, SQL_OPEN_FIREWALL="false")
    assert run.returncode == 0, run.stderr
    assert not [c for c in run.calls if c["tool"] in ("az", "azd", "curl")]


def test_unknown_public_address_skips_the_firewall(stubs: Stubs):
    tools = stubs.install("azd", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": True, "ip": ""})
    assert run.returncode == 0, run.stderr
    assert run.arm_calls() == []
    assert "public IPv4 address could not be determined" in run.stderr


def test_a_refused_firewall_rule_is_reported_and_the_hook_goes_on(stubs: Stubs):
    tools = stubs.install("az", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"az_signed_in": True, "firewall_refused": True})
    assert run.returncode == 0, run.stderr
    assert "the firewall rule was refused" in run.stderr
    assert "AuthorizationFailed" in run.stderr
    assert_user_created_and_migrated(run)


def test_a_failed_user_creation_explains_the_service_principal_case(stubs: Stubs):
    tools = stubs.install("azd", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": True, "sqlcmd_exit": 1})
    assert run.returncode == 4
    assert "Msg 33134" in run.stderr and "sql-identity-principal" in run.stderr
    assert "SQL users and a service principal deployer" in run.stderr
    assert not run.of("python"), "migrations must not run without the user"
    readme = (REPO / "infra" / "README.md").read_text()
    assert "### SQL users and a service principal deployer" in readme


def test_missing_outputs_stop_the_hook_before_any_call(stubs: Stubs):
    tools = stubs.install("azd", "az", "curl", "sqlcmd", "python")
    run = postprovision(tools, {"azd_signed_in": True}, SQL_SERVER="")
    assert run.returncode == 2
    assert "SQL_SERVER" in run.stderr
    assert not [c for c in run.calls if c["args"][:2] != ["env", "get-values"]]


def test_the_stub_path_hides_the_machine_clis(stubs: Stubs):
    # A CLI that is not installed as a stub must really be missing for the script.
    result = subprocess.run(
        [BASH, "-c", "command -v az azd curl sqlcmd || true"],
        env={"PATH": f"{stubs.bin}:{stubs.system}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == ""
    assert os.access(stubs.system / "python3", os.X_OK)


HOOK_SCRIPTS = ["preprovision.sh", "postprovision.sh", "lib/arm.sh", "lib/graph.sh"]


@pytest.mark.parametrize("script", HOOK_SCRIPTS)
def test_hook_scripts_are_valid_bash(script: str):
    result = subprocess.run(
        [BASH, "-n", str(SCRIPTS / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed"
)
def test_hook_scripts_pass_shellcheck():
    result = subprocess.run(
        ["shellcheck", "-x", *HOOK_SCRIPTS],
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
