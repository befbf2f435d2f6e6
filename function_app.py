"""The Function App: its table of contents. Every function lives in a blueprint."""

import azure.functions as func

import commands
import queries
import sync
from shared import operations, telemetry

telemetry.configure()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# Write side: commands -> Azure SQL (rows + outbox) -> Event Hubs.
app.register_functions(commands.bp)
# Projections: Event Hubs -> Cosmos DB, one consumer group each.
app.register_functions(sync.bp)
# Read side: Cosmos DB only.
app.register_functions(queries.bp)
# Health, the OpenAPI document, and the 404/405 fallback.
app.register_functions(operations.bp)
