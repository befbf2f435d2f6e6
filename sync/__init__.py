"""Sync side: Event Hub-triggered projections from domain events into Cosmos DB documents."""

from sync.functions import bp

__all__ = ["bp"]
