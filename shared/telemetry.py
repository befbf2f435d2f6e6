"""Telemetry: Azure Monitor OpenTelemetry when Application Insights is configured, nothing otherwise."""

import logging

from shared import config

log = logging.getLogger(__name__)


def configure() -> bool:
    """Call once per worker process, before the app's clients are created."""
    if not config.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Traces, logs and the HTTP calls of azure-core clients (Cosmos, Event Hubs, Blob) go to App Insights.
    configure_azure_monitor(logger_name="", enable_live_metrics=True)
    log.info("Azure Monitor telemetry configured")
    return True
