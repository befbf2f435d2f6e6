"""Running a command: one transaction for rows + outbox events + idempotency record, then publish.

A handler decides (reads, checks rules, writes rows) and returns an `Outcome`:
the response and the events. `execute` wraps it: Idempotency-Key replay or
422, the transaction with transient-error retry, the outbox, and publishing
after commit (a failed publish is left to the relay; the command still
answers 202).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared import outbox
from shared.encoding import dumps, to_jsonable
from shared.errors import (
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from shared.events import Event
from shared.formats import IDEMPOTENCY_KEY_RE
from shared.http import Request, Response
from shared.publisher import EventPublisher, publisher
from shared.sql.db import Database, Sql, Transaction, database, db_time, utcnow

log = logging.getLogger(__name__)

# UPDLOCK + HOLDLOCK lock the key (or the gap where it would be) until commit, so a
# concurrent request with the same key waits for the first and then replays its answer
# instead of running the command again (Azure SQL reads committed snapshots otherwise).
SELECT_IDEMPOTENCY = Sql(
    tsql="SELECT request_hash, status_code, response_headers, response_body FROM idempotency_keys"
    " WITH (UPDLOCK, HOLDLOCK) WHERE idempotency_key = ?",
    sqlite="SELECT request_hash, status_code, response_headers, response_body FROM idempotency_keys"
    " WHERE idempotency_key = ?",
)
INSERT_IDEMPOTENCY = Sql(
    "INSERT INTO idempotency_keys (idempotency_key, request_hash, status_code, response_headers, response_body,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class CommandContext:
    """Who asked and when: stamped on every event the command emits."""

    correlation_id: str
    command_id: str
    now: datetime
    expected_version: int | None = None
    # Who asked ({"subject", "roles"}), stamped on every event; and, for a caller who
    # may only touch their own records (Orders.Customer), their subject.
    actor: dict | None = None
    owner: str | None = None

    def event(
        self,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        partition_key: str,
        data: dict,
    ) -> Event:
        return Event(
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            partition_key=partition_key,
            occurred_at=self.now,
            correlation_id=self.correlation_id,
            causation_id=self.command_id,
            data=data,
            actor=self.actor,
        )

    def actor_or_system(self) -> dict:
        """The actor to record; in-process callers without a token (tools, tests) are
        the system."""
        return self.actor or {"subject": "system", "roles": []}

    def check_owner(self, owner_subject: str | None, what: str) -> None:
        """404, as if it did not exist, when the caller may only act on their own records
        and this one is someone else's (checked before anything is written)."""
        if self.owner is not None and owner_subject != self.owner:
            raise NotFound(f"{what} does not exist.")

    def check_version(self, current: int) -> None:
        """If-Match: refuse with 412 when the client's version is not the current one."""
        if self.expected_version is not None and self.expected_version != current:
            raise PreconditionFailed(
                f"The resource is at version {current}, not {self.expected_version}.",
                headers={"ETag": f'"{current}"'},
            )


@dataclass
class Outcome:
    response: Response
    events: list[Event] = field(default_factory=list)


def accepted(
    location: str, aggregate_id: str, version: int, **extra: object
) -> Response:
    return Response(
        {"id": aggregate_id, "version": version, **extra},
        status=202,
        headers={"Location": location, "ETag": f'"{version}"'},
    )


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise ValidationFailed('If-Match must be a version in quotes, like "3".')
    return int(text)


def request_fingerprint(request: Request, route: str) -> str:
    # The validated body, normalized (10 and 10.00 are the same amount), not its raw bytes.
    body = to_jsonable(request.body.model_dump()) if request.body is not None else None
    # The caller is part of the request: another subject's key never replays its answer.
    caller = request.principal.subject if request.principal else None
    canonical = json.dumps([route, request.route_params, body, caller], sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _replay(row: tuple, fingerprint: str, key: str) -> Response:
    request_hash, status, headers, body = row
    if request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used with a different request."
        )
    return Response(json.loads(body), int(status), json.loads(headers))


def execute(
    request: Request,
    route: str,
    decide: Callable[[Transaction, CommandContext], Outcome],
    db: Database | None = None,
    events_to: EventPublisher | None = None,
) -> Response:
    db = db or database()
    key = request.header("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 printable ASCII characters."
        )
    fingerprint = request_fingerprint(request, route) if key else ""
    # Keys are the caller's own: two callers choosing the same key never meet (stored
    # as a digest of subject and key, which also fits the column whatever the key).
    stored_key = (
        hashlib.sha256(f"{request.principal.subject}\n{key}".encode()).hexdigest()
        if key and request.principal
        else key
    )
    context = CommandContext(
        correlation_id=request.correlation_id,
        command_id=str(uuid.uuid4()),
        now=utcnow(),
        expected_version=parse_if_match(request.header("if-match")),
        actor=request.principal.actor() if request.principal else None,
        owner=request.owner,
    )

    def work(tx: Transaction) -> tuple[Response, list[Event]]:
        if key:
            row = tx.one(SELECT_IDEMPOTENCY, (stored_key,))
            if row:
                return _replay(row, fingerprint, key), []
        outcome = decide(tx, context)
        events = outbox.record(tx, outcome.events)
        if key:
            tx.execute(
                INSERT_IDEMPOTENCY,
                (
                    stored_key,
                    fingerprint,
                    outcome.response.status,
                    json.dumps(outcome.response.headers),
                    dumps(outcome.response.body),
                    db_time(context.now),
                ),
            )
        return outcome.response, events

    try:
        response, events = db.run(work)
    except Exception as exc:
        if not (key and db.is_unique_violation(exc)):
            raise
        # A concurrent request with the same key committed first: answer as it did.
        response, events = db.run(work)
    try:
        transport = events_to or publisher()
    except Exception:
        # Committed already: the answer stands, and the relay publishes once the transport works.
        log.exception(
            "the event transport is misconfigured; the outbox relay will publish"
        )
        return response
    outbox.publish_pending(db, transport, events)
    return response
