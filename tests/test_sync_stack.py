"""The sync side over the real local stack: convergence under a burst, poison events, a host killed
mid-batch, and rebuilds that reproduce the same documents."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from devtools.stack import LocalStack
from shared.cosmos import container_specs
from shared.eventlog import LocalEventLog, OutgoingEvent
from shared.money import from_cents
from shared.read_model import AGGREGATE_ID
from tests.api import ADDRESS, accepted, customer, order, product

CONVERGE_SECONDS = 30
# A host killed by a test leaves positions up to a second behind what it applied: the
# catch-up timer (every 15 s) re-drives such a gap once it has stood still for
# PROJECTION_CATCH_UP_AFTER_SECONDS (45). Lag checks allow for that.
HEAL_SECONDS = 15 + 45 + CONVERGE_SECONDS


@pytest.fixture(scope="module")
def cosmos(local_stack):
    return local_stack.read_model()


@pytest.fixture(scope="module")
def sql(local_stack):
    conn = sqlite3.connect(local_stack.settings["SQLITE_PATH"], timeout=30)
    yield lambda query, *params: conn.execute(query, params).fetchall()
    conn.close()


def documents(cosmos, container: str) -> dict[tuple[str, str], dict]:
    """Every document of a container, keyed by (partition key, id): ids repeat across partitions."""
    pk = container_specs()[container]["partitionKey"].lstrip("/")
    rows = cosmos.get_container_client(container).query_items(
        "SELECT * FROM c", enable_cross_partition_query=True
    )
    return {
        (r[pk], r["id"]): {k: v for k, v in r.items() if not k.startswith("_")}
        for r in rows
    }


def write_side(sql) -> dict:
    """What the read model must say, computed from the SQL write model."""
    orders = {
        oid: {
            "status": status,
            "version": version,
            "total": float(from_cents(total)),
            "customerId": cid,
            "customerName": name,
        }
        for oid, cid, status, total, version, name in sql(
            "SELECT o.id, o.customer_id, o.status, o.total_cents, o.version, c.name"
            " FROM orders o JOIN customers c ON c.id = o.customer_id"
        )
    }
    products = {
        pid: {
            "stock": stock,
            "version": version,
            "name": name,
            "price": float(from_cents(price)),
        }
        for pid, name, price, stock, version in sql(
            "SELECT id, name, price_cents, stock, version FROM products"
        )
    }
    customers = {
        cid: {"name": name, "email": email, "version": version}
        for cid, name, email, version in sql(
            "SELECT id, name, email, version FROM customers"
        )
    }
    sold = {
        pid: (units, from_cents(revenue))
        for pid, units, revenue in sql(
            "SELECT l.product_id, SUM(l.quantity), SUM(l.quantity * l.unit_price_cents) FROM order_lines l"
            " JOIN orders o ON o.id = l.order_id WHERE o.status != 'cancelled' GROUP BY l.product_id"
        )
    }
    totals: dict[str, tuple[int, int, int]] = {}
    days: dict[str, tuple[int, int, int]] = {}
    for cid, day, status, total in sql(
        "SELECT customer_id, substr(placed_at, 1, 10), status, total_cents FROM orders"
    ):
        live = 0 if status == "cancelled" else total
        count, open_, spent = totals.get(cid, (0, 0, 0))
        totals[cid] = (
            count + 1,
            open_ + (status in ("placed", "shipped")),
            spent + live,
        )
        count, cancelled, revenue = days.get(day, (0, 0, 0))
        days[day] = (count + 1, cancelled + (status == "cancelled"), revenue + live)
    return {
        "orders": orders,
        "products": products,
        "customers": customers,
        "sold": sold,
        "customer totals": totals,
        "days": days,
    }


def read_side(cosmos) -> dict:
    orders = {
        oid: {
            "status": d["status"],
            "version": d["version"],
            "total": d["total"],
            "customerId": d["customerId"],
            "customerName": d["customer"]["name"],  # renames reach every order
        }
        for (_, oid), d in documents(cosmos, "orders").items()
    }
    products = {
        pid: {
            "stock": d["stock"],
            "version": d["version"],
            "name": d["name"],
            "price": d["price"],
        }
        for (_, pid), d in documents(cosmos, "products").items()
    }
    customers = {
        cid: {"name": d["name"], "email": d["email"], "version": d["version"]}
        for (_, cid), d in documents(cosmos, "customers").items()
    }
    # The aggregates as the projections keep them (the totals documents), not re-summed.
    sold = {
        pk: (d["counters"]["units"], from_cents(d["counters"]["revenueCents"]))
        for (pk, doc_id), d in documents(cosmos, "product-sales").items()
        if doc_id == AGGREGATE_ID and d["counters"].get("units")
    }
    totals = {
        pk: (
            d["counters"].get("orders", 0),
            d["counters"].get("open", 0),
            d["counters"].get("spentCents", 0),
        )
        for (pk, doc_id), d in documents(cosmos, "customer-orders").items()
        if doc_id == AGGREGATE_ID and d["counters"].get("orders")
    }
    days: dict[str, tuple[int, int, int]] = {}
    for (_, doc_id), d in documents(cosmos, "daily-sales").items():
        if doc_id == AGGREGATE_ID:
            count, cancelled, revenue = days.get(d["day"], (0, 0, 0))
            days[d["day"]] = (
                count + d["counters"].get("orders", 0),
                cancelled + d["counters"].get("cancelled", 0),
                revenue + d["counters"].get("revenueCents", 0),
            )
    return {
        "orders": orders,
        "products": products,
        "customers": customers,
        "sold": sold,
        "customer totals": totals,
        "days": {day: figures for day, figures in days.items() if figures[0]},
    }


def assert_converges(sql, cosmos, timeout: float = CONVERGE_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        expected = write_side(sql)
        try:
            actual = read_side(cosmos)
        except AzureError:  # a store being restarted and provisioned: look again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
            continue
        if expected == actual:
            return actual
        if time.monotonic() > deadline:
            for part in expected:
                diff = {
                    k: (expected[part].get(k), actual[part].get(k))
                    for k in expected[part].keys() | actual[part].keys()
                    if expected[part].get(k) != actual[part].get(k)
                }
                assert not diff, (
                    f"{part} differs (write side, read side): {list(diff.items())[:5]}"
                )
        time.sleep(0.25)


def wait_until_idle(http, timeout: float = HEAL_SECONDS) -> None:
    """Until every projection has applied everything the event log holds."""
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("/projections").json()["projections"]
        if all(p["lagEvents"] == 0 for p in status):
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def customer_names_on_orders(cosmos, customer_id: str) -> set[str]:
    return {
        d["customer"]["name"]
        for d in documents(cosmos, "orders").values()
        if d["customerId"] == customer_id
    }


def burst(
    http, rng: random.Random, customers, products, orders: list[str], n: int
) -> None:
    def one(i: int) -> None:
        kind = rng.random()
        if kind < 0.45 or not orders:
            c = rng.choice(customers)
            lines = [
                (rng.choice(products)["id"], rng.randint(1, 3))
                for _ in range(rng.randint(1, 3))
            ]
            r = http.post(
                "/orders",
                json={
                    "customerId": c["id"],
                    "items": [{"productId": p, "quantity": q} for p, q in lines],
                    "shippingAddress": ADDRESS,
                },
            )
            if r.status_code == 202:
                orders.append(r.json()["id"])
        elif kind < 0.6:
            http.post(
                f"/orders/{rng.choice(orders)}/ship", json={"trackingNumber": f"T{i}"}
            )
        elif kind < 0.7:
            http.post(f"/orders/{rng.choice(orders)}/cancel", json={"reason": "burst"})
        elif kind < 0.78:
            http.post(f"/orders/{rng.choice(orders)}/deliver")
        elif kind < 0.86:
            http.post(
                f"/orders/{rng.choice(orders)}/items",
                json={"productId": rng.choice(products)["id"], "quantity": 1},
            )
        elif kind < 0.93:
            http.patch(
                f"/customers/{rng.choice(customers)['id']}",
                json={"name": f"Renamed {i}"},
            )
        else:
            http.post(
                f"/products/{rng.choice(products)['id']}/stock",
                json={"delta": rng.randint(1, 5)},
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def test_a_burst_of_mixed_commands_converges_exactly(http, sql, cosmos):
    rng = random.Random(7)
    customers = [customer(http, credit=100_000) for _ in range(6)]
    products = [
        product(http, price=rng.randint(100, 5000) / 100, stock=200) for _ in range(5)
    ]
    orders: list[str] = []
    burst(http, rng, customers, products, orders, 150)
    state = assert_converges(sql, cosmos)
    assert len(orders) > 30
    for c in customers:
        name = state["customers"][c["id"]]["name"]
        assert customer_names_on_orders(cosmos, c["id"]) <= {name}, (
            "a rename did not reach every order"
        )


def test_a_poison_event_is_dead_lettered_and_later_events_still_project(
    http, local_stack, sql, cosmos
):
    log = LocalEventLog(local_stack.settings["LOCAL_EVENT_LOG_PATH"])
    c = customer(http)
    poison_key = c[
        "id"
    ]  # the customer's partition: events after the poison must still flow
    [stored] = log.append(
        [OutgoingEvent(b'{"not": "an event"', poison_key, {"eventType": "Garbage"})]
    )
    p = product(http, stock=5)
    later = order(http, c["id"], [(p["id"], 1)])
    deadline = time.monotonic() + CONVERGE_SECONDS
    while http.get(f"/orders/{later['id']}").status_code != 200:
        assert time.monotonic() < deadline, "events after the poison were not projected"
        time.sleep(0.1)
    dead = ContainerClient.from_connection_string(
        local_stack.settings["DeadLetterStorage"], "dead-letters"
    )
    wanted = f"/{stored.partition}/{stored.sequence_number:020d}.json"
    while True:
        names = [n for n in dead.list_blob_names() if n.endswith(wanted)]
        if len(names) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(n.split("/")[0] for n in names) == [
        "customer-view",
        "order-detail",
        "product-view",
        "sales-stats",
    ]
    letter = json.loads(dead.download_blob(names[0]).readall())
    assert letter["body"] == {"text": '{"not": "an event"'}
    assert "unparseable" in letter["error"]
    assert letter["sequenceNumber"] == stored.sequence_number
    status = http.get("/projections").json()["projections"]
    assert all(p["deadLettered"] >= 1 for p in status)


def test_killing_the_host_mid_batch_converges_without_double_counting(
    http, devhost, sql, cosmos
):
    rng = random.Random(11)
    customers = [customer(http, credit=100_000) for _ in range(4)]
    products = [product(http, price=3.33, stock=500) for _ in range(3)]
    orders: list[str] = []
    for _ in range(3):
        burst(http, rng, customers, products, orders, 40)
        devhost.kill()  # SIGKILL: whatever batch is in flight is never checkpointed
        devhost.start()
    assert_converges(sql, cosmos)


def test_projection_status_reports_positions_and_no_lag_when_idle(http, sql, cosmos):
    c, p = customer(http), product(http)
    order(http, c["id"], [(p["id"], 1)])
    assert_converges(sql, cosmos)
    deadline = time.monotonic() + HEAL_SECONDS
    while True:
        status = {s["name"]: s for s in http.get("/projections").json()["projections"]}
        if (
            all(s["lagEvents"] == 0 for s in status.values())
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    assert set(status) == {
        "order-detail",
        "customer-view",
        "product-view",
        "sales-stats",
    }
    for s in status.values():
        assert (
            s["lagEvents"] == 0 and s["lastAppliedPosition"] and s["writeSidePosition"]
        )
        assert s["consumerGroup"] == s["name"]


def test_rebuild_reproduces_identical_documents(http, local_stack, sql, cosmos):
    c = customer(http)
    p = product(http, stock=10)
    o = order(http, c["id"], [(p["id"], 2)])
    accepted(http.post(f"/orders/{o['id']}/ship", json={"trackingNumber": "R1"}))
    accepted(http.patch(f"/customers/{c['id']}", json={"name": "Rebuilt Name"}))
    assert_converges(sql, cosmos)
    wait_until_idle(http)  # every projection, not only the figures compared above
    containers = [
        "orders",
        "customers",
        "customer-orders",
        "products",
        "product-sales",
        "daily-sales",
    ]
    before = {name: documents(cosmos, name) for name in containers}
    from devtools.provision import app_settings
    from sync.rebuild import rebuild

    with app_settings(local_stack.settings):
        for projection in (
            "order-detail",
            "customer-view",
            "product-view",
            "sales-stats",
        ):
            result = rebuild(projection)
            assert result["events"] >= 5
    after = {name: documents(cosmos, name) for name in containers}
    for name in containers:
        changed = {
            key: (before[name].get(key), after[name].get(key))
            for key in before[name].keys() | after[name].keys()
            if before[name].get(key) != after[name].get(key)
        }
        assert not changed, (
            f"{name}: {len(changed)} differ, e.g. {list(changed.items())[:2]}"
        )
    assert after["orders"][(o["id"], o["id"])]["customer"]["name"] == "Rebuilt Name"


def test_a_restarted_stack_rebuilds_its_empty_read_model_from_the_outbox(
    http, local_stack, sql, cosmos, tmp_path
):
    """The Cosmos stand-in forgets everything on restart; SQLite keeps the outbox. A new stack
    over the same write database must come up with the read model rebuilt."""
    c = customer(http)
    p = product(http, stock=4)
    o = order(http, c["id"], [(p["id"], 2)])
    assert_converges(sql, cosmos)
    state = tmp_path / "restarted"
    state.mkdir()
    source = sqlite3.connect(local_stack.settings["SQLITE_PATH"])
    target = sqlite3.connect(state / "orders.db")
    source.backup(target)  # a consistent copy, as the next `make run` would find it
    source.close()
    target.close()
    with LocalStack(state, fixed_ports=False) as restarted:
        rebuilt = restarted.read_model()
        assert (
            documents(rebuilt, "orders")[(o["id"], o["id"])]["order"]["items"][0][
                "quantity"
            ]
            == 2
        )
        assert read_side(rebuilt) == read_side(cosmos)
