"""The Function App: its table of contents. Every function lives in a blueprint."""

import azure.functions as func

import commands
import queries
import sync
from shared import operations, telemetry

telemetry.configure()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(
    commands.bp
)  # write side: commands -> Azure SQL + outbox -> Event Hubs
app.register_functions(sync.bp)  # projections: Event Hubs -> Cosmos DB
app.register_functions(queries.bp)  # read side: Cosmos DB only
app.register_functions(operations.bp)  # health, OpenAPI document, 404/405 fallback
