"""Application settings: every setting the code reads is declared here, once.

The Functions host exposes app settings (Azure) and `local.settings.json`
`Values` (local) as environment variables, so reading the environment is
reading the settings. The table below feeds the README's configuration table
and the check that infra/ sets each required setting on the Function App.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TOPOLOGY_PATH = Path(__file__).with_name("topology.json")


@dataclass(frozen=True)
class Setting:
    name: str
    description: str
    default: str | None = None
    azure: str = (
        "required"  # "required" on the Function App, "optional", or "local-only"
    )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SQL_CONNECTION_STRING",
        "ODBC connection string for SQL Server/Azure SQL with a password "
        "(local Docker path). Wins over SQL_SERVER.",
        azure="local-only",
    ),
    Setting(
        "SQL_SERVER",
        "Azure SQL server host name; connects with an Entra token from the managed identity.",
    ),
    Setting("SQL_DATABASE", "Azure SQL database name."),
    Setting(
        "SQL_DRIVER",
        "ODBC driver name.",
        default="ODBC Driver 18 for SQL Server",
        azure="optional",
    ),
    Setting(
        "SQLITE_PATH",
        "Embedded SQLite write database used when no SQL Server is configured.",
        default=".local/orders.db",
        azure="local-only",
    ),
    Setting(
        "EVENT_TRANSPORT",
        "'eventhubs' (Azure, or the Event Hubs emulator) or 'local' (the local event log).",
        default="eventhubs",
        azure="optional",
    ),
    Setting(
        "EVENTHUB_NAME", "Event hub carrying domain events.", default="domain-events"
    ),
    Setting(
        "EventHubConnection__fullyQualifiedNamespace",
        "Event Hubs namespace host name for the "
        "identity-based connection (trigger and publisher).",
    ),
    Setting(
        "EventHubConnection",
        "Event Hubs connection string (emulator only).",
        azure="local-only",
    ),
    Setting(
        "LOCAL_EVENT_LOG_PATH",
        "SQLite file of the local event log (EVENT_TRANSPORT=local).",
        default=".local/events.db",
        azure="local-only",
    ),
    Setting("COSMOS_ENDPOINT", "Cosmos DB account endpoint."),
    Setting(
        "COSMOS_KEY",
        "Cosmos DB key (emulators only; Azure uses RBAC).",
        azure="local-only",
    ),
    Setting(
        "COSMOS_DATABASE",
        "Cosmos DB database of the read models.",
        default="orders",
        azure="optional",
    ),
    Setting(
        "COSMOS_VERIFY_TLS",
        "Verify the Cosmos endpoint's TLS certificate ('false' only for local "
        "emulators with self-signed certificates).",
        default="true",
        azure="optional",
    ),
    Setting(
        "DeadLetterStorage__blobServiceUri",
        "Blob endpoint for dead-lettered events (identity-based).",
    ),
    Setting(
        "DeadLetterStorage",
        "Storage connection string for dead letters (emulators only).",
        azure="local-only",
    ),
    Setting(
        "EVENTHUB_CATCH_UP_CONSUMER_GROUP",
        "Consumer group the projections' catch-up pass reads a gap with (the triggers "
        "hold theirs with exclusive receivers).",
        default="$Default",
        azure="optional",
    ),
    Setting(
        "PROJECTION_CATCH_UP_AFTER_SECONDS",
        "A projection partition whose recorded position has not advanced for this long "
        "while the event log holds newer events is re-driven by the catch-up pass (a live "
        "partition's position moves every second; one left behind by a crash does not). "
        "Longer than the triggers' own retries (about 31 s), which it would only duplicate.",
        default="45",
        azure="optional",
    ),
    Setting(
        "AUTH_ISSUER",
        "Issuer of the access tokens the API accepts: "
        "https://login.microsoftonline.com/<tenant id>/v2.0 in Azure, the development issuer locally.",
    ),
    Setting(
        "AUTH_AUDIENCE",
        "Audience(s) of those tokens, comma-separated: the API app registration's "
        "application ID URI and/or client id.",
    ),
    Setting(
        "AUTH_JWKS_URI",
        "Where the issuer publishes its signing keys: "
        "https://login.microsoftonline.com/<tenant id>/discovery/v2.0/keys in Azure.",
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "Client id of a user-assigned managed identity, if one is used.",
        azure="optional",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "Application Insights connection: traces, metrics and logs go to Azure Monitor.",
        azure="optional",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP (HTTP/protobuf) endpoint of a collector, Jaeger or the Aspire dashboard; "
        "traces, metrics and logs are sent there too. The other standard OTEL_* "
        "variables (headers, intervals, resource attributes) apply.",
        azure="optional",
    ),
    Setting(
        "OTEL_SERVICE_NAME",
        "Service name on every span, metric and log (cloud role name in Application Insights).",
        default="orders",
        azure="optional",
    ),
    Setting(
        "TELEMETRY_DIR",
        "Write traces, metrics and logs as OTLP JSON lines under this folder "
        "(`make run`: .local/telemetry; read by `make trace` and `make metrics`).",
        azure="local-only",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str | None:
    """A declared setting's value from the environment, or its default."""
    setting = _BY_NAME[name]  # KeyError: read only what is declared above
    value = os.environ.get(name)
    return value if value not in (None, "") else setting.default


def require(name: str) -> str:
    """A setting the code cannot do without: its value or default, else a clear error."""
    value = get(name)
    if value is None:
        raise RuntimeError(f"{name} is not set")
    return value


def get_bool(name: str) -> bool:
    return (get(name) or "").strip().lower() in {"1", "true", "yes", "on"}


@cache
def topology() -> dict[str, Any]:
    """Names shared by code, local stack and Bicep (shared/topology.json)."""
    return json.loads(TOPOLOGY_PATH.read_text())
