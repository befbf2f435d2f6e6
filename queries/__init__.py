"""Read side: HTTP queries answered from Cosmos DB only (never the SQL write model)."""

from queries.functions import bp

__all__ = ["bp"]
