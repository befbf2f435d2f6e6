"""The Function App: its table of contents. Every function lives in a blueprint."""

import gc

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

# What start-up created (modules, the SDKs' tables, the models) lives as long as the
# process: kept out of every garbage collection, whose full passes otherwise scan all of it
# (pauses of 50-300 ms under load, every thread stopped).
gc.freeze()
