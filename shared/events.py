"""The event envelope every domain event travels in (outbox row, Event Hubs message, projections).

Events carry state: `data` holds the aggregate's new state and the
denormalized names projections need, so a projection never calls back into
the write side. `position` is the global outbox position, known once the
outbox row exists; `aggregateVersion` orders events of one aggregate.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.encoding import to_jsonable

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Event:
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    partition_key: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str
    data: dict[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = SCHEMA_VERSION
    position: int | None = None
    # Who caused it: {"subject": <Entra ID oid/sub>, "roles": [...]} (None: the system).
    actor: dict[str, Any] | None = None

    def with_position(self, position: int) -> Event:
        return replace(self, position=position)

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": self.event_type,
            "schemaVersion": self.schema_version,
            "aggregateType": self.aggregate_type,
            "aggregateId": self.aggregate_id,
            "aggregateVersion": self.aggregate_version,
            "position": self.position,
            "partitionKey": self.partition_key,
            "occurredAt": self.occurred_at.isoformat(timespec="microseconds"),
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "actor": self.actor,
            "data": to_jsonable(self.data),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Event:
        return cls(
            event_id=doc["eventId"],
            event_type=doc["type"],
            schema_version=doc["schemaVersion"],
            aggregate_type=doc["aggregateType"],
            aggregate_id=doc["aggregateId"],
            aggregate_version=doc["aggregateVersion"],
            position=doc.get("position"),
            partition_key=doc["partitionKey"],
            occurred_at=datetime.fromisoformat(doc["occurredAt"]),
            correlation_id=doc["correlationId"],
            causation_id=doc["causationId"],
            data=doc["data"],
            actor=doc.get("actor"),  # absent from events written before it existed
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> Event:
        # Money arrives as JSON numbers; parse them straight to Decimal, never through float.
        return cls.from_json(json.loads(body, parse_float=Decimal))

    def properties(self) -> dict[str, str]:
        """Application properties on the transport message, for routing and diagnostics."""
        return {
            "eventType": self.event_type,
            "schemaVersion": str(self.schema_version),
            "aggregateId": self.aggregate_id,
            "correlationId": self.correlation_id,
        }
