"""The dead-letter store: events a projection could not apply, kept whole in Blob Storage.

One blob per (projection, partition, sequence number): a poison event that is
redelivered overwrites its own blob instead of piling up copies.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from azure.storage.blob import ContainerClient

from shared import config


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
        self.container.upload_blob(name, json.dumps(document, indent=2), overwrite=True)
        return name

    def count(self, projection: str) -> int:
        return sum(
            1 for _ in self.container.list_blob_names(name_starts_with=f"{projection}/")
        )

    def read_all(self, projection: str) -> list[dict[str, Any]]:
        return [
            json.loads(self.container.download_blob(name).readall())
            for name in self.container.list_blob_names(
                name_starts_with=f"{projection}/"
            )
        ]


@cache
def dead_letters() -> DeadLetterStore:
    name = config.topology()["storage"]["deadLetterContainer"]
    if conn_str := config.get("DeadLetterStorage"):
        container = ContainerClient.from_connection_string(conn_str, name)
    else:
        from shared.identity import credential

        container = ContainerClient(
            config.get("DeadLetterStorage__blobServiceUri"),
            name,
            credential=credential(),
        )
    return DeadLetterStore(container)
