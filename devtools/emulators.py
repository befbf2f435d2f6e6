"""The well-known development credentials of Azurite and the Cosmos DB emulator (public),
and Azurite's connection string with explicit endpoints."""

from __future__ import annotations

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def azurite_connection_string(host: str, **ports: int) -> str:
    """Endpoints spelled out (the Event Hubs checkpoint-store packages reject
    `UseDevelopmentStorage=true`), one per service given: blob=, queue=, table=."""
    endpoints = "".join(
        f"{service.capitalize()}Endpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
        for service, port in ports.items()
    )
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};{endpoints}"
    )
