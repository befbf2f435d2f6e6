"""Where the Event Hub listeners keep their checkpoints: blob storage (Azurite), as the
Event Hubs extension does, or memory (unit tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

from devtools.emulators import azurite_connection_string
from shared.config import topology


class CheckpointStore(Protocol):
    def list_checkpoints(
        self,
        fully_qualified_namespace: str,
        eventhub_name: str,
        consumer_group: str,
        **kwargs: Any,
    ) -> Iterable[dict[str, Any]]: ...

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None: ...


class MemoryCheckpointStore:
    """Same interface as BlobCheckpointStore, in memory (unit tests)."""

    def __init__(self) -> None:
        self.checkpoints: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def list_checkpoints(
        self,
        fully_qualified_namespace: str,
        eventhub_name: str,
        consumer_group: str,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        key = (fully_qualified_namespace, eventhub_name, consumer_group)
        with self._lock:
            return [dict(c) for k, c in self.checkpoints.items() if k[:3] == key]

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        key = (
            checkpoint["fully_qualified_namespace"],
            checkpoint["eventhub_name"],
            checkpoint["consumer_group"],
            checkpoint["partition_id"],
        )
        with self._lock:
            self.checkpoints[key] = dict(checkpoint)


def checkpoint_container_name() -> str:
    return str(topology()["storage"]["checkpointContainer"])


def explicit_storage_connection_string(connection_string: str) -> str:
    """The checkpoint store rejects `UseDevelopmentStorage=true`; spell Azurite's defaults out."""
    if (
        connection_string.replace(" ", "").lower().rstrip(";")
        == "usedevelopmentstorage=true"
    ):
        return azurite_connection_string("127.0.0.1", blob=10000)
    return connection_string


def open_blob_checkpoint_store(connection_string: str, container_name: str) -> Any:
    """A BlobCheckpointStore on `container_name`, created first (the package does not create it)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    from azure.storage.blob import ContainerClient

    connection_string = explicit_storage_connection_string(connection_string)
    # Few retries: a dev host should say quickly that Azurite is not there.
    with ContainerClient.from_connection_string(
        connection_string, container_name, retry_total=2
    ) as container:
        try:
            container.create_container()
        except ResourceExistsError:
            pass
    return BlobCheckpointStore.from_connection_string(
        connection_string, container_name, retry_total=3
    )
