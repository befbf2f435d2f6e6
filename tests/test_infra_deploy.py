"""Offline checks of the deployment files: azure.yaml, the emulator config and
docker-compose, the postprovision script and the SQL grant script."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra_support import INFRA, REPO, topology


def test_azure_yaml_declares_the_function_service_and_hooks():
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert doc["services"]["api"] == {
        "project": ".",
        "language": "python",
        "host": "function",
    }
    assert doc["infra"]["path"] == "infra"
    # No postdeploy hook: nothing hands API Management a key after the code is published.
    assert set(doc["hooks"]) == {"preprovision", "postprovision"}
    for name in doc["hooks"]:
        for shell in ("posix", "windows"):
            hook = doc["hooks"][name][shell]
            assert hook["run"] == f"bash ./infra/scripts/{name}.sh", (name, shell)
            assert hook["continueOnError"] is False
        assert (REPO / "infra" / "scripts" / f"{name}.sh").exists()


def emulator_config_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "generate_config", REPO / "docker" / "eventhubs" / "generate_config.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ignored(path: str, patterns: list[str]) -> bool:
    """gitignore's rule for a pattern without a slash: it matches any part of the path."""
    return any(fnmatch.fnmatch(part, p) for part in path.split("/") for p in patterns)


def test_the_deployment_package_holds_the_app_and_nothing_else():
    patterns = [
        line.strip()
        for line in (REPO / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [
        p for p in patterns if "/" in p or p.startswith("!")
    ]  # _ignored's scope
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    deployed = {f.split("/")[0] for f in files if not _ignored(f, patterns)}
    assert deployed == {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "commands",
        "queries",
        "sync",
        "shared",
    }


def test_event_hubs_emulator_config_matches_topology():
    path = REPO / "docker" / "eventhubs" / "Config.json"
    generator = emulator_config_module()
    assert path.read_text() == generator.render(topology()), (
        "docker/eventhubs/Config.json is stale: python docker/eventhubs/generate_config.py"
    )
    namespaces = json.loads(path.read_text())["UserConfig"]["NamespaceConfig"]
    assert [n["Name"] for n in namespaces] == ["emulatorNs1"]
    (entity,) = namespaces[0]["Entities"]
    hub = topology()["eventHub"]
    assert entity["Name"] == hub["name"]
    assert entity["PartitionCount"] == str(hub["partitionCount"])
    groups = [g["Name"] for g in entity["ConsumerGroups"]]
    assert groups == hub["consumerGroups"]
    assert len(groups) <= 20 and "$default" not in {g.lower() for g in groups}


def test_docker_compose_runs_the_official_emulators():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    images = {name: s["image"] for name, s in services.items()}
    assert images["azurite"].startswith("mcr.microsoft.com/azure-storage/azurite")
    assert images["sqlserver"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert images["cosmosdb"].startswith(
        "mcr.microsoft.com/cosmosdb/linux/azure-cosmos-emulator"
    )
    eventhubs = services["eventhubs"]
    assert eventhubs["image"].startswith(
        "mcr.microsoft.com/azure-messaging/eventhubs-emulator"
    )
    assert eventhubs["environment"]["BLOB_SERVER"] == "azurite"
    assert eventhubs["environment"]["METADATA_SERVER"] == "azurite"
    mount = next(v for v in eventhubs["volumes"] if "Config.json" in v)
    source, target = mount.split(":")[:2]
    assert (REPO / source).resolve() == (
        REPO / "docker" / "eventhubs" / "Config.json"
    ).resolve()
    assert target == "/Eventhubs_Emulator/ConfigFiles/Config.json"
    assert "azurite" in eventhubs["depends_on"]


@pytest.fixture
def stub_tools(tmp_path: Path) -> Path:
    """Fake sqlcmd and python that record how the postprovision script calls them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sqlcmd").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == "--help" ]]; then echo "  --authentication-method"; exit 0; fi\n'
        f'printf "%s\\n" "$@" > "{tmp_path}/sqlcmd.args"\n'
    )
    (bin_dir / "python").write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/python.args"\n'
        f'env > "{tmp_path}/python.env"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postprovision_creates_the_sql_user_then_migrates(stub_tools: Path):
    env = {
        "PATH": f"{stub_tools}:/usr/bin:/bin",
        "HOME": str(stub_tools.parent),
        "SQL_SERVER": "sql-test.database.windows.net",
        "SQL_DATABASE": "orders",
        "AZURE_FUNCTION_IDENTITY_NAME": "id-api-test",
        "SQLCMD": str(stub_tools / "sqlcmd"),
        "PYTHON": str(stub_tools / "python"),
        "SQL_OPEN_FIREWALL": "false",
        "SQL_CONNECTION_STRING": "Server=localhost;Uid=sa",  # must not reach the migration
    }
    script = INFRA / "scripts" / "postprovision.sh"
    result = subprocess.run(
        ["bash", str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    work = stub_tools.parent
    sqlcmd_args = (work / "sqlcmd.args").read_text().splitlines()
    assert sqlcmd_args[sqlcmd_args.index("-S") + 1] == "sql-test.database.windows.net"
    assert sqlcmd_args[sqlcmd_args.index("-d") + 1] == "orders"
    assert (
        sqlcmd_args[sqlcmd_args.index("--authentication-method") + 1]
        == "ActiveDirectoryDefault"
    )
    assert sqlcmd_args[sqlcmd_args.index("-v") + 1] == "APP_IDENTITY_NAME=id-api-test"
    script_file = Path(sqlcmd_args[sqlcmd_args.index("-i") + 1])
    assert script_file.exists()
    assert (work / "python.args").read_text().split() == ["-m", "shared.sql.migrate"]
    migrate_env = (work / "python.env").read_text()
    assert "SQL_SERVER=sql-test.database.windows.net" in migrate_env
    assert "SQL_CONNECTION_STRING=" not in migrate_env


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postprovision_refuses_without_its_variables(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(INFRA / "scripts" / "postprovision.sh")],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SQL_SERVER" in result.stderr


def test_sql_grant_script_is_idempotent():
    sql = (INFRA / "scripts" / "sql" / "grant-app-identity.sql").read_text()
    assert (
        "IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(APP_IDENTITY_NAME)')"
        in sql
    )
    assert "CREATE USER [$(APP_IDENTITY_NAME)] FROM EXTERNAL PROVIDER" in sql
    for role in ("db_datareader", "db_datawriter"):
        assert f"IF IS_ROLEMEMBER(N'{role}', N'$(APP_IDENTITY_NAME)') = 0" in sql
        assert f"ALTER ROLE {role} ADD MEMBER [$(APP_IDENTITY_NAME)]" in sql
    assert "GRANT EXECUTE TO [$(APP_IDENTITY_NAME)]" in sql
