"""Sample function app for the dev host's tests: HTTP routes, Event Hub triggers, a timer.

Triggered functions append what they received to `$SAMPLE_RECORD_DIR/<function>.jsonl`.
An event body is JSON; `{"fail": true}` makes the function raise, `{"sleep": s}` makes
it sleep first (after recording), so tests can kill the host mid-batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_record_lock = threading.Lock()


def record(name: str, entry: dict[str, Any]) -> None:
    directory = os.environ.get("SAMPLE_RECORD_DIR")
    if not directory:
        return
    with _record_lock, open(Path(directory) / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def json_response(value: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(value), status_code=status, mimetype="application/json"
    )


# --- HTTP -------------------------------------------------------------------------------


@app.route("items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"kind": "int", "id": req.route_params["id"]})


@app.route("items/{name:alpha}", methods=["GET"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"kind": "alpha", "name": req.route_params["name"]})


@app.route("items/special", methods=["GET"])
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"kind": "literal"})


@app.route("items/{id:int}", methods=["DELETE"])
async def item_delete(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return json_response(
        {"deleted": req.route_params["id"], "thread": threading.current_thread().name}
    )


@app.route("echo", methods=["GET", "POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    try:
        parsed = req.get_json()
    except ValueError:
        parsed = None
    return json_response(
        {
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "route_params": dict(req.route_params),
            "headers": {
                k: v
                for k, v in req.headers.items()
                if k.startswith("x-") or k == "content-type"
            },
            "body": req.get_body().decode("utf-8", "replace"),
            "json": parsed,
            "thread": threading.current_thread().name,
        }
    )


@app.route("files/{*path}")
def files(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"path": req.route_params.get("path"), "method": req.method})


@app.route("orders/{orderId:guid}/lines/{line:int?}", methods=["GET"])
def order_lines(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(dict(req.route_params))


@app.route("status/{code:int:range(200,599)}", methods=["GET"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=int(req.route_params["code"]))


@app.route("async-hello/{name}", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(
        f"hello {req.route_params['name']} from {threading.current_thread().name}"
    )


@app.route("cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(
        "café", mimetype="text/html", charset="latin-1", headers={"X-Custom": "yes"}
    )
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route("plain", methods=["GET"])
def plain(req: func.HttpRequest) -> str:
    return "just text"


@app.route("nothing", methods=["GET"])
def nothing(req: func.HttpRequest) -> None:
    return None  # the worker cannot encode None for `$return`: the host answers 500


@app.route("settings/{name}", methods=["GET"])
def setting(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"value": os.environ.get(req.route_params["name"])})


@app.route("boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom on purpose")


@app.function_name("renamed_function")
@app.route("context", methods=["GET"])
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return json_response(
        {"function_name": context.function_name, "invocation_id": context.invocation_id}
    )


# --- Event Hubs -------------------------------------------------------------------------


def describe(events: list[func.EventHubEvent], context: func.Context) -> dict[str, Any]:
    metadata = events[0].metadata or {}
    # Cardinality many sends arrays; cardinality one sends the single event's values.
    properties = metadata.get("PropertiesArray") or [metadata.get("Properties") or {}]
    system = metadata.get("SystemPropertiesArray") or [
        metadata.get("SystemProperties") or {}
    ]
    return {
        "at": time.time(),
        "retry": context.retry_context.retry_count,
        "partition": metadata.get("PartitionContext", {}).get("PartitionId"),
        "consumer_group": metadata.get("PartitionContext", {}).get("ConsumerGroup"),
        "events": [
            {
                "body": e.get_body().decode("utf-8"),
                "partition_key": e.partition_key,
                "sequence_number": e.sequence_number,
                "offset": e.offset,
                "offset_type": type(e.offset).__name__,
                "enqueued_time": e.enqueued_time.isoformat()
                if e.enqueued_time
                else None,
                "properties": properties[i],
                "system_sequence": system[i].get("SequenceNumber"),
            }
            for i, e in enumerate(events)
        ],
    }


def act_on(events: list[func.EventHubEvent]) -> None:
    for event in events:
        body = json.loads(event.get_body())
        if body.get("sleep"):
            time.sleep(float(body["sleep"]))
        if body.get("fail"):
            raise RuntimeError(
                f"failing on purpose at sequence {event.sequence_number}"
            )


@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%SAMPLE_HUB%",
    connection="EventHubConnection",
    consumer_group="cg-a",
    cardinality="many",
)
@app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:01")
def eh_a(events: list[func.EventHubEvent], context: func.Context) -> None:
    record("eh_a", describe(events, context))
    act_on(events)


@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%SAMPLE_HUB%",
    connection="EventHubConnection",
    consumer_group="%SAMPLE_CG_B%",
    cardinality="many",
)
async def eh_b(events: list[func.EventHubEvent], context: func.Context) -> None:
    record("eh_b", describe(events, context))
    await asyncio.to_thread(act_on, events)


@app.event_hub_message_trigger(
    arg_name="event",
    event_hub_name="%SAMPLE_HUB%",
    connection="EventHubConnection",
    consumer_group="cg-one",
    cardinality="one",
)
def eh_one(event: func.EventHubEvent, context: func.Context) -> None:
    record(
        "eh_one",
        describe([event], context) | {"metadata_keys": sorted(event.metadata or {})},
    )


# --- Timer ------------------------------------------------------------------------------


@app.timer_trigger(
    schedule="%SAMPLE_TIMER_SCHEDULE%",
    arg_name="timer",
    run_on_startup=True,
    use_monitor=False,
)
def tick(timer: func.TimerRequest) -> None:
    record("tick", {"at": time.time(), "past_due": timer.past_due})
