"""Sync side: Event Hub-triggered projections from domain events into Cosmos DB documents,
and the projections' operational routes."""

from sync import routes as _routes  # noqa: F401 - registers the routes on bp
from sync.functions import bp

__all__ = ["bp"]
