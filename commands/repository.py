"""SQL for the write model: every statement the commands run, and row <-> aggregate mapping.

Stock and credit are reserved by conditional UPDATEs (`... WHERE stock >= ?`) that
return the new row in the same round trip (OUTPUT on T-SQL, RETURNING on SQLite):
no read-then-write race, whatever the isolation level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple
from datetime import datetime
from typing import Any, TypeVar

from commands.domain import Address, Customer, Order, OrderLine, Product, iso
from shared.events import OrderChangeRecord
from shared.sql.db import Sql, Transaction, db_time, from_db_time

T = TypeVar("T")

CUSTOMER_COLUMNS = "id, name, email, credit_limit_cents, version, owner_subject"
PRODUCT_COLUMNS = "id, sku, name, price_cents, stock, version"
ORDER_COLUMNS = (
    "id, customer_id, status, ship_street, ship_city, ship_state, ship_postal_code, ship_country,"
    " tracking_number, cancellation_reason, placed_at, shipped_at, delivered_at, cancelled_at, updated_at, version"
)


def _inserted(columns: str) -> str:
    return ", ".join(f"INSERTED.{c.strip()}" for c in columns.split(","))


INSERT_CUSTOMER = Sql(
    "INSERT INTO customers (id, name, email, email_key, credit_limit_cents, open_orders_cents, version,"
    " created_at, updated_at, owner_subject) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?)"
)
SELECT_CUSTOMER = Sql(f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?")
SELECT_OWNED_CUSTOMER = Sql("SELECT id FROM customers WHERE owner_subject = ?")
INSERT_CHANGE = Sql(
    "INSERT INTO order_changes (order_id, version, change, actor_subject, actor_roles, changed_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_CHANGES = Sql(
    "SELECT version, change, actor_subject, actor_roles, changed_at FROM order_changes"
    " WHERE order_id = ? ORDER BY version"
)
# The credit check: placed + shipped orders plus this amount may not exceed the limit.
RESERVE_CREDIT = Sql(
    tsql=f"UPDATE customers SET open_orders_cents = open_orders_cents + ? OUTPUT {_inserted(CUSTOMER_COLUMNS)}"
    " WHERE id = ? AND open_orders_cents + ? <= credit_limit_cents",
    sqlite="UPDATE customers SET open_orders_cents = open_orders_cents + ?"
    f" WHERE id = ? AND open_orders_cents + ? <= credit_limit_cents RETURNING {CUSTOMER_COLUMNS}",
)

INSERT_PRODUCT = Sql(
    "INSERT INTO products (id, sku, name, price_cents, stock, version, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
)
SELECT_PRODUCT = Sql(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?")
RESERVE_STOCK = Sql(
    tsql=f"UPDATE products SET stock = stock - ?, version = version + 1, updated_at = ?"
    f" OUTPUT {_inserted(PRODUCT_COLUMNS)} WHERE id = ? AND stock >= ?",
    sqlite="UPDATE products SET stock = stock - ?, version = version + 1, updated_at = ?"
    f" WHERE id = ? AND stock >= ? RETURNING {PRODUCT_COLUMNS}",
)

INSERT_ORDER = Sql(
    "INSERT INTO orders (id, customer_id, status, total_cents, ship_street, ship_city, ship_state,"
    " ship_postal_code, ship_country, placed_at, updated_at, version)"
    " VALUES (?, ?, 'placed', ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)
INSERT_LINE = Sql(
    "INSERT INTO order_lines (order_id, product_id, sku, product_name, unit_price_cents, quantity, line_no)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_ORDER = Sql(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?")
SELECT_LINES = Sql(
    "SELECT product_id, sku, product_name, unit_price_cents, quantity FROM order_lines"
    " WHERE order_id = ? ORDER BY line_no"
)


def _one(
    tx: Transaction, statement: Sql, params: tuple, mapper: Callable[[tuple], T]
) -> T | None:
    """The one row a statement returns, mapped; None when it returns none."""
    row = tx.one(statement, params)
    return mapper(row) if row else None


def customer_from_row(row: tuple) -> Customer:
    return Customer(row[0], row[1], row[2], int(row[3]), int(row[4]), row[5])


def product_from_row(row: tuple) -> Product:
    return Product(row[0], row[1], row[2], int(row[3]), int(row[4]), int(row[5]))


def insert_customer(tx: Transaction, customer: Customer, now: datetime) -> None:
    tx.execute(
        INSERT_CUSTOMER,
        (
            customer.id,
            customer.name,
            customer.email,
            customer.email.lower(),
            customer.credit_limit_cents,
            db_time(now),
            db_time(now),
            customer.owner_subject,
        ),
    )


def owned_customer_id(tx: Transaction, subject: str) -> str | None:
    """The customer record a self-service subject registered, if any."""
    row = tx.one(SELECT_OWNED_CUSTOMER, (subject,))
    return row[0] if row else None


def record_change(
    tx: Transaction,
    order_id: str,
    version: int,
    change: str,
    actor: dict[str, Any],
    now: datetime,
) -> list[OrderChangeRecord]:
    """Note who made this version of the order; returns the order's whole change log."""
    tx.execute(
        INSERT_CHANGE,
        (
            order_id,
            version,
            str(change),
            actor["subject"],
            " ".join(actor["roles"]),
            db_time(now),
        ),
    )
    return [
        {
            "version": int(v),
            "change": kind,
            "by": {"subject": subject, "roles": roles.split()},
            "at": iso(from_db_time(at)),
        }
        for v, kind, subject, roles, at in tx.all(SELECT_CHANGES, (order_id,))
    ]


def get_customer(tx: Transaction, customer_id: str) -> Customer | None:
    return _one(tx, SELECT_CUSTOMER, (customer_id,), customer_from_row)


def reserve_credit(
    tx: Transaction, customer_id: str, amount_cents: int
) -> Customer | None:
    """Add to the customer's open orders if the credit limit allows; None if it does not."""
    return _one(
        tx, RESERVE_CREDIT, (amount_cents, customer_id, amount_cents), customer_from_row
    )


def insert_product(tx: Transaction, product: Product, now: datetime) -> None:
    tx.execute(
        INSERT_PRODUCT,
        (
            product.id,
            product.sku,
            product.name,
            product.price_cents,
            product.stock,
            db_time(now),
            db_time(now),
        ),
    )


def get_product(tx: Transaction, product_id: str) -> Product | None:
    return _one(tx, SELECT_PRODUCT, (product_id,), product_from_row)


def reserve_stock(
    tx: Transaction, product_id: str, quantity: int, now: datetime
) -> Product | None:
    """Take `quantity` from stock if that much is there; None if not (or no such product)."""
    return _one(
        tx,
        RESERVE_STOCK,
        (quantity, db_time(now), product_id, quantity),
        product_from_row,
    )


def insert_order(tx: Transaction, order: Order) -> None:
    tx.execute(
        INSERT_ORDER,
        (
            order.id,
            order.customer_id,
            order.total_cents,
            *astuple(order.shipping_address),
            db_time(order.placed_at),
            db_time(order.updated_at),
        ),
    )
    for line_no, line in enumerate(order.lines, start=1):
        _insert_line(tx, order.id, line, line_no)


def get_order(
    tx: Transaction, order_id: str, statement: Sql = SELECT_ORDER
) -> Order | None:
    row = tx.one(statement, (order_id,))
    if row is None:
        return None
    lines = tuple(
        OrderLine(r[0], r[1], r[2], int(r[3]), int(r[4]))
        for r in tx.all(SELECT_LINES, (order_id,))
    )
    return Order(
        id=row[0],
        customer_id=row[1],
        status=row[2],
        lines=lines,
        shipping_address=Address(row[3], row[4], row[5], row[6], row[7]),
        tracking_number=row[8],
        cancellation_reason=row[9],
        placed_at=_at(row[10]),
        shipped_at=from_db_time(row[11]),
        delivered_at=from_db_time(row[12]),
        cancelled_at=from_db_time(row[13]),
        updated_at=_at(row[14]),
        version=int(row[15]),
    )


# Reads that precede a change lock the row for the rest of the transaction (UPDLOCK on
# SQL Server; SQLite's BEGIN IMMEDIATE already serializes writers), so of two concurrent
# commands on one aggregate the second sees the first's result: exactly one wins.
LOCK_CUSTOMER = Sql(
    tsql=f"SELECT {CUSTOMER_COLUMNS} FROM customers WITH (UPDLOCK, ROWLOCK) WHERE id = ?",
    sqlite=f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?",
)
LOCK_PRODUCT = Sql(
    tsql=f"SELECT {PRODUCT_COLUMNS} FROM products WITH (UPDLOCK, ROWLOCK) WHERE id = ?",
    sqlite=f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?",
)
LOCK_ORDER = Sql(
    tsql=f"SELECT {ORDER_COLUMNS} FROM orders WITH (UPDLOCK, ROWLOCK) WHERE id = ?",
    sqlite=f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?",
)
UPDATE_CUSTOMER = Sql(
    "UPDATE customers SET name = ?, email = ?, email_key = ?, credit_limit_cents = ?, version = ?, updated_at = ?"
    " WHERE id = ?"
)
RELEASE_CREDIT = Sql(
    "UPDATE customers SET open_orders_cents = open_orders_cents - ? WHERE id = ?"
)
UPDATE_PRODUCT = Sql(
    "UPDATE products SET name = ?, price_cents = ?, version = ?, updated_at = ? WHERE id = ?"
)
ADJUST_STOCK = Sql(
    tsql="UPDATE products SET stock = stock + ?, version = version + 1, updated_at = ?"
    f" OUTPUT {_inserted(PRODUCT_COLUMNS)} WHERE id = ? AND stock + ? >= 0",
    sqlite="UPDATE products SET stock = stock + ?, version = version + 1, updated_at = ?"
    f" WHERE id = ? AND stock + ? >= 0 RETURNING {PRODUCT_COLUMNS}",
)
UPDATE_ORDER = Sql(
    "UPDATE orders SET status = ?, total_cents = ?, ship_street = ?, ship_city = ?, ship_state = ?,"
    " ship_postal_code = ?, ship_country = ?, tracking_number = ?, cancellation_reason = ?, shipped_at = ?,"
    " delivered_at = ?, cancelled_at = ?, updated_at = ?, version = ? WHERE id = ? AND version = ?"
)
UPDATE_LINE_QUANTITY = Sql(
    "UPDATE order_lines SET quantity = ? WHERE order_id = ? AND product_id = ?"
)
DELETE_LINE = Sql("DELETE FROM order_lines WHERE order_id = ? AND product_id = ?")
NEXT_LINE_NO = Sql(
    "SELECT COALESCE(MAX(line_no), 0) + 1 FROM order_lines WHERE order_id = ?"
)


def lock_customer(tx: Transaction, customer_id: str) -> Customer | None:
    return _one(tx, LOCK_CUSTOMER, (customer_id,), customer_from_row)


def lock_product(tx: Transaction, product_id: str) -> Product | None:
    return _one(tx, LOCK_PRODUCT, (product_id,), product_from_row)


def lock_order(tx: Transaction, order_id: str) -> Order | None:
    return get_order(tx, order_id, statement=LOCK_ORDER)


def update_customer(tx: Transaction, customer: Customer, now: datetime) -> None:
    tx.execute(
        UPDATE_CUSTOMER,
        (
            customer.name,
            customer.email,
            customer.email.lower(),
            customer.credit_limit_cents,
            customer.version,
            db_time(now),
            customer.id,
        ),
    )


def release_credit(tx: Transaction, customer_id: str, amount_cents: int) -> None:
    tx.execute(RELEASE_CREDIT, (amount_cents, customer_id))


def update_product(tx: Transaction, product: Product, now: datetime) -> None:
    tx.execute(
        UPDATE_PRODUCT,
        (product.name, product.price_cents, product.version, db_time(now), product.id),
    )


def adjust_stock(
    tx: Transaction, product_id: str, delta: int, now: datetime
) -> Product | None:
    """Add `delta` (may be negative) to stock unless it would go below 0; None if it would."""
    return _one(
        tx, ADJUST_STOCK, (delta, db_time(now), product_id, delta), product_from_row
    )


def update_order(tx: Transaction, order: Order, previous_version: int) -> None:
    tx.execute(
        UPDATE_ORDER,
        (
            order.status,
            order.total_cents,
            *astuple(order.shipping_address),
            order.tracking_number,
            order.cancellation_reason,
            _t(order.shipped_at),
            _t(order.delivered_at),
            _t(order.cancelled_at),
            db_time(order.updated_at),
            order.version,
            order.id,
            previous_version,
        ),
    )
    if tx.rowcount != 1:
        raise RuntimeError(f"order {order.id} changed under a held lock")


def set_line_quantity(
    tx: Transaction, order_id: str, product_id: str, quantity: int
) -> None:
    tx.execute(UPDATE_LINE_QUANTITY, (quantity, order_id, product_id))


def add_line(tx: Transaction, order_id: str, line: OrderLine) -> None:
    _insert_line(tx, order_id, line, tx.value(NEXT_LINE_NO, (order_id,)))


def _insert_line(tx: Transaction, order_id: str, line: OrderLine, line_no: int) -> None:
    tx.execute(
        INSERT_LINE,
        (
            order_id,
            line.product_id,
            line.sku,
            line.name,
            line.unit_price_cents,
            line.quantity,
            line_no,
        ),
    )


def delete_line(tx: Transaction, order_id: str, product_id: str) -> None:
    tx.execute(DELETE_LINE, (order_id, product_id))


def _at(value: Any) -> datetime:
    """A NOT NULL time column."""
    moment = from_db_time(value)
    if moment is None:
        raise ValueError("a NOT NULL time column is NULL")
    return moment


def _t(value: datetime | None) -> str | None:
    return db_time(value) if value else None
