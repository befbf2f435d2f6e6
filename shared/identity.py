"""The one Entra credential of a worker process (managed identity in Azure, developer login locally)."""

from functools import cache

from azure.identity import DefaultAzureCredential

from shared import config


@cache
def credential() -> DefaultAzureCredential:
    # A user-assigned identity must be named; DefaultAzureCredential picks it from this id.
    return DefaultAzureCredential(
        managed_identity_client_id=config.get("AZURE_CLIENT_ID")
    )
