"""The transactional outbox against real SQLite and the real local event log.

Publishing is made to fail by a transport that refuses (fault injection at the
transport boundary); everything else is the production code path.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from commands import handlers, models
from commands.functions import run_command as execute
from shared import outbox
from shared.eventlog import LocalEventLog
from shared.http import Request
from shared.publisher import LocalLogPublisher
from shared.sql.db import Database, _sqlite_connect
from shared.sql.migrate import apply_migrations


class TransportDown(LocalLogPublisher):
    def publish(self, events) -> None:
        raise ConnectionError("event transport unavailable")


@pytest.fixture
def db(tmp_path) -> Database:
    database = Database(_sqlite_connect(str(tmp_path / "orders.db")), "sqlite")
    apply_migrations(database)
    return database


def register(db: Database, publisher, email: str | None = None):
    body = models.RegisterCustomer(
        name="Ada",
        email=email or f"{uuid.uuid4().hex}@example.com",
        creditLimit=Decimal(100),
    )
    request = Request("POST", {}, {}, {}, "corr-1", body=body)
    return execute(
        request,
        "register_customer",
        lambda tx, ctx: handlers.register_customer(tx, ctx, body),
        db=db,
        events_to=publisher,
    )


def all_events(log: LocalEventLog) -> list[dict]:
    return [
        json.loads(e.body) for p in log.partition_ids for e in log.read(p, None, 1000)
    ]


def unsent(db: Database) -> int:
    return outbox.stats(db)[0]


def test_publish_after_commit_marks_events_sent(db, tmp_path):
    publisher = LocalLogPublisher(str(tmp_path / "events.db"), 4)
    response = register(db, publisher)
    assert response.status == 202
    events = all_events(publisher.log)
    assert [e["type"] for e in events] == ["CustomerRegistered"]
    assert events[0]["position"] == 1 and events[0]["correlationId"] == "corr-1"
    assert unsent(db) == 0


def test_a_failed_publish_still_answers_202_and_the_relay_publishes_exactly_once(
    db, tmp_path
):
    log_path = str(tmp_path / "events.db")
    response = register(db, TransportDown(log_path, 4))
    assert response.status == 202
    assert unsent(db) == 1
    real = LocalLogPublisher(log_path, 4)
    assert all_events(real.log) == []

    # Too young for the relay: the command's own publish may still be under way.
    assert outbox.relay(db, real) == 0
    assert outbox.relay(db, real, min_age=timedelta(0)) == 1
    assert unsent(db) == 0
    events = all_events(real.log)
    assert [e["type"] for e in events] == ["CustomerRegistered"]
    assert events[0]["aggregateId"] == response.body["id"]

    # What was marked sent is never sent again.
    assert outbox.relay(db, real, min_age=timedelta(0)) == 0
    assert len(all_events(real.log)) == 1


def test_relay_keeps_events_when_the_transport_is_still_down(db, tmp_path):
    log_path = str(tmp_path / "events.db")
    register(db, TransportDown(log_path, 4))
    with pytest.raises(ConnectionError):
        outbox.relay(db, TransportDown(log_path, 4), min_age=timedelta(0))
    assert unsent(db) == 1


def test_relay_publishes_in_outbox_order(db, tmp_path):
    log_path = str(tmp_path / "events.db")
    down = TransportDown(log_path, 4)
    ids = [register(db, down).body["id"] for _ in range(5)]
    real = LocalLogPublisher(log_path, 4)
    assert outbox.relay(db, real, min_age=timedelta(0), batch_size=2) == 5
    events = sorted(all_events(real.log), key=lambda e: e["position"])
    assert [e["aggregateId"] for e in events] == ids


def test_a_refused_command_writes_nothing(db, tmp_path):
    publisher = LocalLogPublisher(str(tmp_path / "events.db"), 4)
    register(db, publisher, email="dup@example.com")
    with pytest.raises(Exception, match="already exists"):
        register(db, publisher, email="DUP@example.com")
    conn = sqlite3.connect(tmp_path / "orders.db")
    assert conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
