"""What the host sends the worker for an Event Hub trigger: the data and the trigger
metadata, typed as the host's ToRpc does, decoded by the library's own
`EventHubTriggerConverter` into the function's argument."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from devtools.devhost.settings import net_datetime
from shared.eventlog import StoredEvent

# The hub's namespace in metadata and checkpoint keys; the local log has none, so a fixed name.
FULLY_QUALIFIED_NAMESPACE = "local-event-log"


def _json(value: Any) -> meta.Datum:
    return meta.Datum(json.dumps(value, separators=(",", ":")), "json")


def _collection_string(values: Iterable[str | None]) -> meta.Datum:
    # Without the IncludeEmptyEntriesInMessagePayload capability (the Python worker does not
    # ask for it) the host drops null and empty strings from string arrays.
    return meta.Datum(
        SimpleNamespace(string=[v for v in values if v]), "collection_string"
    )


def system_properties(event: StoredEvent) -> dict[str, Any]:
    """EventData.SystemProperties plus the four keys the extension adds for bindings."""
    props: dict[str, Any] = {
        "x-opt-sequence-number": event.sequence_number,
        "x-opt-offset": str(event.offset),
        "x-opt-enqueued-time": net_datetime(event.enqueued_time, utc_kind=True),
    }
    if event.partition_key is not None:
        props["x-opt-partition-key"] = event.partition_key
    props.update(
        {
            "SequenceNumber": event.sequence_number,
            "Offset": event.offset,
            "PartitionKey": event.partition_key,
            "EnqueuedTimeUtc": net_datetime(event.enqueued_time, utc_kind=False),
        }
    )
    return props


def _batch_metadata(events: Sequence[StoredEvent]) -> dict[str, meta.Datum]:
    return {
        "PartitionKeyArray": _collection_string(e.partition_key for e in events),
        "OffsetArray": _collection_string(str(e.offset) for e in events),
        "SequenceNumberArray": meta.Datum(
            SimpleNamespace(sint64=[e.sequence_number for e in events]),
            "collection_sint64",
        ),
        "EnqueuedTimeUtcArray": _json(
            [net_datetime(e.enqueued_time, utc_kind=False) for e in events]
        ),
        "PropertiesArray": _json([e.properties for e in events]),
        "SystemPropertiesArray": _json([system_properties(e) for e in events]),
    }


def _event_metadata(event: StoredEvent) -> dict[str, meta.Datum]:
    metadata: dict[str, meta.Datum] = {}
    if event.partition_key:
        metadata["PartitionKey"] = meta.Datum(event.partition_key, "string")
    return metadata | {
        "Offset": _json(event.offset),
        "SequenceNumber": _json(event.sequence_number),
        "EnqueuedTimeUtc": _json(net_datetime(event.enqueued_time, utc_kind=False)),
        "Properties": _json(event.properties),
        "SystemProperties": _json(system_properties(event)),
    }


def trigger_metadata(
    events: Sequence[StoredEvent],
    *,
    many: bool,
    function_name: str,
    eventhub_name: str,
    consumer_group: str,
    partition_id: str,
    fully_qualified_namespace: str = FULLY_QUALIFIED_NAMESPACE,
) -> dict[str, meta.Datum]:
    """The binding data of EventHubTriggerBindingStrategy, typed as the host's ToRpc does.

    string -> string, long[] -> collection_sint64, string[] -> collection_string, and
    everything else (long, DateTime, dictionaries, objects) -> JSON.
    """
    context = {
        "PartitionContext": _json(
            {
                "IsCheckpointingAfterInvocation": True,
                "FullyQualifiedNamespace": fully_qualified_namespace,
                "EventHubName": eventhub_name,
                "ConsumerGroup": consumer_group,
                "PartitionId": partition_id,
            }
        ),
        "CheckpointContext": _json({"IsCheckpointingAfterInvocation": True}),
        "sys": _json(
            {
                "MethodName": function_name,
                "UtcNow": net_datetime(datetime.now(UTC), utc_kind=True),
                "RandGuid": str(uuid.uuid4()),
            }
        ),
    }
    if many:
        return context | _batch_metadata(events)
    (event,) = events
    return context | _event_metadata(event)


def trigger_data(
    events: Sequence[StoredEvent], *, many: bool, data_type: str | None
) -> meta.Datum:
    as_string = (data_type or "").lower() == "string"
    if many:
        if as_string:
            return meta.Datum(
                SimpleNamespace(string=[e.body.decode("utf-8") for e in events]),
                "collection_string",
            )
        return meta.Datum(
            SimpleNamespace(bytes=[e.body for e in events]), "collection_bytes"
        )
    (event,) = events
    return (
        meta.Datum(event.body.decode("utf-8"), "string")
        if as_string
        else meta.Datum(event.body, "bytes")
    )


def decode_trigger(
    events: Sequence[StoredEvent],
    *,
    many: bool,
    function_name: str,
    eventhub_name: str,
    consumer_group: str,
    partition_id: str,
    data_type: str | None = None,
) -> Any:
    """The function's argument: `list[func.EventHubEvent]` (many) or one `func.EventHubEvent`."""
    return EventHubTriggerConverter.decode(
        data=trigger_data(events, many=many, data_type=data_type),
        trigger_metadata=trigger_metadata(
            events,
            many=many,
            function_name=function_name,
            eventhub_name=eventhub_name,
            consumer_group=consumer_group,
            partition_id=partition_id,
        ),
    )
