"""The projections' operational routes: their status and the redrive of dead letters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.auth import ADMIN, SUPPORT
from shared.errors import NotFound
from shared.http import Request, Response, http_route
from sync.functions import bp
from sync.projections import PROJECTIONS
from sync.redrive import redrive
from sync.status import read_status


class ProjectionStatus(BaseModel):
    name: str
    consumerGroup: str
    lastAppliedPosition: int | None
    lastAppliedAt: str | None
    writeSidePosition: int | None
    lagEvents: int
    lagSeconds: float
    deadLettered: int
    partitions: list[dict[str, Any]]


class Projections(BaseModel):
    projections: list[ProjectionStatus]


@http_route(
    bp,
    "GET",
    "projections",
    name="projections",
    summary="Per projection: position, lag, dead letters",
    tag="operations",
    response=Projections,
    errors=(503,),
    roles=(ADMIN, SUPPORT),
)
def projections(request: Request) -> Response:
    return Response({"projections": read_status()})


# Dead letters one request re-applies: bounded, so the request answers in seconds.
REDRIVE_LIMIT = 100


class RedriveResult(BaseModel):
    projection: str
    redriven: int
    stillFailing: int
    remaining: int  # left for the next call: one call redrives at most REDRIVE_LIMIT


@http_route(
    bp,
    "POST",
    "projections/{name}/redrive",
    name="redrive_projection",
    summary="Re-apply a projection's dead-lettered events; applied ones are removed",
    tag="operations",
    response=RedriveResult,
    errors=(404, 503),
    roles=(ADMIN,),
)
def redrive_projection(request: Request) -> Response:
    name = request.route_params["name"]
    if name not in PROJECTIONS:
        raise NotFound(
            f"No projection {name!r}; the projections are {', '.join(PROJECTIONS)}."
        )
    return Response(redrive(name, limit=REDRIVE_LIMIT))
