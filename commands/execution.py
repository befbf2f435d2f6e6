"""Running a command: one transaction for rows + outbox events + idempotency record, then publish.

A handler decides (loads, calls the domain, saves) and returns an `Outcome`: the
result and the events. `execute` wraps it: replay of an idempotency key's answer
(or 422 when the key came with another request), the transaction with transient-error
retry, the outbox, and publishing after commit (a failed publish is left to the
relay; the command is still accepted). Nothing here reads a request: the route
adapter (`commands.functions`) turns its headers into a `CommandCall` and the
`CommandResult` (status, body, location, ETag, which a replay answers again) into a
response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared import outbox
from shared.auth import Principal
from shared.encoding import dumps, to_jsonable
from shared.errors import (
    IdempotencyKeyReused,
    PreconditionFailed,
    hide_unless_owned,
)
from shared.events import Event
from shared.formats import etag
from shared.publisher import EventPublisher, publisher
from shared.sql.db import (
    Database,
    Sql,
    Transaction,
    UniqueViolation,
    database,
    db_time,
    utcnow,
)

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
class CommandCall:
    """One command as the write side receives it: plain values, no HTTP."""

    route: str
    correlation_id: str
    body: BaseModel | None = None
    route_params: dict[str, str] = field(default_factory=dict)
    # The version the client last saw (If-Match), and its key for a safe retry.
    expected_version: int | None = None
    idempotency_key: str | None = None
    principal: Principal | None = None
    # The subject whose records alone the caller may touch (Orders.Customer), or None.
    owner: str | None = None

    def fingerprint(self) -> str:
        """What makes two calls with one idempotency key the same request."""
        # The validated body, normalized (10 and 10.00 are the same amount), not its bytes.
        body = to_jsonable(self.body.model_dump()) if self.body is not None else None
        # The caller is part of the request: another subject's key never replays its answer.
        caller = self.principal.subject if self.principal else None
        canonical = json.dumps(
            [self.route, self.route_params, body, caller], sort_keys=True
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def stored_key(self) -> str | None:
        """Keys are the caller's own: two callers choosing the same key never meet (stored
        as a digest of subject and key, which also fits the column whatever the key)."""
        key = self.idempotency_key
        if key and self.principal:
            return hashlib.sha256(
                f"{self.principal.subject}\n{key}".encode()
            ).hexdigest()
        return key


@dataclass(frozen=True)
class CommandContext:
    """Who asked and when: stamped on every event the command emits."""

    correlation_id: str
    command_id: str
    now: datetime
    expected_version: int | None = None
    # Who asked ({"subject", "roles"}), stamped on every event; and, for a caller who
    # may only touch their own records (Orders.Customer), their subject.
    actor: dict[str, Any] | None = None
    owner: str | None = None

    def actor_or_system(self) -> dict[str, Any]:
        """The actor to record; in-process callers without a token (tools, tests) are
        the system."""
        return self.actor or {"subject": "system", "roles": []}

    def check_owner(self, owner_subject: str | None, what: str) -> None:
        """Checked before anything is written (see `hide_unless_owned`)."""
        hide_unless_owned(self.owner, owner_subject, what)

    def check_version(self, current: int) -> None:
        """Refuse (412) when the client's expected version is not the current one."""
        if self.expected_version is not None and self.expected_version != current:
            raise PreconditionFailed(
                f"The resource is at version {current}, not {self.expected_version}.",
                headers={"ETag": etag(current)},
            )


@dataclass(frozen=True)
class CommandResult:
    """What a command answers: status, body, and where the resource is and its version."""

    body: dict[str, Any]
    status: int = 202
    location: str | None = None
    etag: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Location": self.location, "ETag": self.etag}
        return {name: value for name, value in headers.items() if value is not None}


@dataclass
class Outcome:
    result: CommandResult
    events: list[Event] = field(default_factory=list)


def accepted(
    location: str, aggregate_id: str, version: int, **extra: object
) -> CommandResult:
    return CommandResult(
        {"id": aggregate_id, "version": version, **extra},
        location=location,
        etag=etag(version),
    )


def _replay(row: tuple[Any, ...], call: CommandCall) -> CommandResult:
    request_hash, status, headers, body = row
    if request_hash != call.fingerprint():
        raise IdempotencyKeyReused(
            f"Idempotency-Key {call.idempotency_key!r} was already used with a different request."
        )
    stored = json.loads(headers)
    return CommandResult(
        json.loads(body), int(status), stored.get("Location"), stored.get("ETag")
    )


def _remember(
    tx: Transaction, call: CommandCall, result: CommandResult, now: datetime
) -> None:
    tx.execute(
        INSERT_IDEMPOTENCY,
        (
            call.stored_key(),
            call.fingerprint(),
            result.status,
            json.dumps(result.headers()),
            dumps(result.body),
            db_time(now),
        ),
    )


Decide = Callable[[Transaction, CommandContext], Outcome]


def execute(
    call: CommandCall,
    decide: Decide,
    db: Database | None = None,
    events_to: EventPublisher | None = None,
) -> CommandResult:
    db = db or database()
    context = CommandContext(
        correlation_id=call.correlation_id,
        command_id=str(uuid.uuid4()),
        now=utcnow(),
        expected_version=call.expected_version,
        actor=call.principal.actor() if call.principal else None,
        owner=call.owner,
    )

    def work(tx: Transaction) -> tuple[CommandResult, list[Event]]:
        if call.idempotency_key:
            row = tx.one(SELECT_IDEMPOTENCY, (call.stored_key(),))
            if row:
                return _replay(row, call), []
        outcome = decide(tx, context)
        events = outbox.record(tx, outcome.events)
        if call.idempotency_key:
            _remember(tx, call, outcome.result, context.now)
        return outcome.result, events

    try:
        result, events = db.run(work)
    except UniqueViolation:
        if not call.idempotency_key:
            raise
        # A concurrent request with the same key committed first: answer as it did.
        result, events = db.run(work)
    _publish(db, events_to, events)
    return result


def _publish(
    db: Database, events_to: EventPublisher | None, events: list[Event]
) -> None:
    try:
        transport = events_to or publisher()
    except Exception:
        # Committed already: the answer stands, and the relay publishes once the transport works.
        log.exception(
            "the event transport is misconfigured; the outbox relay will publish"
        )
        return
    outbox.publish_pending(db, transport, events)
