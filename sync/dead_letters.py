"""The dead-letter store: events a projection could not apply, kept whole in Blob Storage.

One blob per (projection, partition, sequence number): a poison event that is
redelivered overwrites its own blob instead of piling up copies. The container
is created on first use if it is missing (a new storage account, or a local
storage emulator that restarted empty), so dead-lettering never fails for that.
Status reads use short timeouts: they sit on a request path.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared import config

# Per-call limits for request paths (GET /api/projections): a frozen storage account
# answers 503 within seconds instead of holding the request.
REQUEST_PATH_CALL = {"connection_timeout": 3, "read_timeout": 3, "retry_total": 0}


class DeadLetterStore:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    def put(
        self, projection: str, delivery: Any, error: str, event_id: str | None = None
    ) -> str:
        name = f"{projection}/{delivery.partition}/{delivery.sequence_number:020d}.json"
        try:
            body: dict[str, str] = {"text": delivery.body.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"base64": base64.b64encode(delivery.body).decode("ascii")}
        document = {
            "projection": projection,
            "partition": delivery.partition,
            "sequenceNumber": delivery.sequence_number,
            "offset": delivery.offset,
            "enqueuedTime": delivery.enqueued_time.isoformat()
            if delivery.enqueued_time
            else None,
            "eventId": event_id,
            "error": error,
            "deadLetteredAt": datetime.now(UTC).isoformat(),
            "body": body,
        }
        text = json.dumps(document, indent=2)
        try:
            self.container.upload_blob(name, text, overwrite=True)
        except ResourceNotFoundError:
            self._create_container()
            self.container.upload_blob(name, text, overwrite=True)
        return name

    def _create_container(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass  # created meanwhile by another writer

    def names(self, projection: str, **call: Any) -> list[str]:
        """Blob names of a projection's dead letters ("": of every projection)."""
        prefix = f"{projection}/" if projection else None
        try:
            return list(self.container.list_blob_names(name_starts_with=prefix, **call))
        except ResourceNotFoundError:
            return []  # no container yet: nothing was ever dead-lettered here

    def counts(self) -> Counter[str]:
        """Dead letters per projection, in one listing (it sits on a request path)."""
        return Counter(
            name.split("/", 1)[0] for name in self.names("", **REQUEST_PATH_CALL)
        )

    def read(self, name: str) -> dict[str, Any]:
        return json.loads(self.container.download_blob(name).readall())

    def read_all(self, projection: str) -> list[dict[str, Any]]:
        return [self.read(name) for name in self.names(projection)]

    def delete(self, name: str) -> None:
        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            pass  # settled by a concurrent redrive

    def delete_all(self, names: list[str]) -> int:
        for name in names:
            self.delete(name)
        return len(names)


def body_bytes(letter: dict[str, Any]) -> bytes:
    """The event's original bytes, as `put` kept them."""
    body = letter["body"]
    if "text" in body:
        return body["text"].encode("utf-8")
    return base64.b64decode(body["base64"])


@cache
def dead_letters() -> DeadLetterStore:
    name = config.topology()["storage"]["deadLetterContainer"]
    if conn_str := config.get("DeadLetterStorage"):
        container = ContainerClient.from_connection_string(conn_str, name)
    else:
        from shared.identity import credential

        container = ContainerClient(
            config.require("DeadLetterStorage__blobServiceUri"),
            name,
            credential=credential(),
        )
    return DeadLetterStore(container)
