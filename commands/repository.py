"""SQL for the write model: every statement the commands run, and row <-> aggregate mapping.

Stock and credit are reserved by conditional UPDATEs (`... WHERE stock >= ?`) that
return the new row in the same round trip (OUTPUT on T-SQL, RETURNING on SQLite):
no read-then-write race, whatever the isolation level.
"""

from __future__ import annotations

from datetime import datetime

from commands.domain import Address, Customer, Order, OrderLine, Product
from shared.sql.db import Sql, Transaction, db_time, from_db_time

CUSTOMER_COLUMNS = "id, name, email, credit_limit_cents, version"
PRODUCT_COLUMNS = "id, sku, name, price_cents, stock, version"
ORDER_COLUMNS = (
    "id, customer_id, status, ship_street, ship_city, ship_state, ship_postal_code, ship_country,"
    " tracking_number, cancellation_reason, placed_at, shipped_at, delivered_at, cancelled_at, updated_at, version"
)


def _inserted(columns: str) -> str:
    return ", ".join(f"INSERTED.{c.strip()}" for c in columns.split(","))


INSERT_CUSTOMER = Sql(
    "INSERT INTO customers (id, name, email, email_key, credit_limit_cents, open_orders_cents, version,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)"
)
SELECT_CUSTOMER = Sql(f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?")
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


def customer_from_row(row: tuple) -> Customer:
    return Customer(row[0], row[1], row[2], int(row[3]), int(row[4]))


def product_from_row(row: tuple) -> Product:
    return Product(row[0], row[1], row[2], int(row[3]), int(row[4]), int(row[5]))


def insert_customer(tx: Transaction, customer: Customer, now: datetime) -> None:
    tx.execute(
        INSERT_CUSTOMER,
        (customer.id, customer.name, customer.email, customer.email.lower(), customer.credit_limit_cents,
         db_time(now), db_time(now)),
    )


def get_customer(tx: Transaction, customer_id: str) -> Customer | None:
    row = tx.one(SELECT_CUSTOMER, (customer_id,))
    return customer_from_row(row) if row else None


def reserve_credit(tx: Transaction, customer_id: str, amount_cents: int) -> Customer | None:
    """Add to the customer's open orders if the credit limit allows; None if it does not."""
    row = tx.one(RESERVE_CREDIT, (amount_cents, customer_id, amount_cents))
    return customer_from_row(row) if row else None


def insert_product(tx: Transaction, product: Product, now: datetime) -> None:
    tx.execute(
        INSERT_PRODUCT,
        (product.id, product.sku, product.name, product.price_cents, product.stock, db_time(now), db_time(now)),
    )


def get_product(tx: Transaction, product_id: str) -> Product | None:
    row = tx.one(SELECT_PRODUCT, (product_id,))
    return product_from_row(row) if row else None


def reserve_stock(tx: Transaction, product_id: str, quantity: int, now: datetime) -> Product | None:
    """Take `quantity` from stock if that much is there; None if not (or no such product)."""
    row = tx.one(RESERVE_STOCK, (quantity, db_time(now), product_id, quantity))
    return product_from_row(row) if row else None


def insert_order(tx: Transaction, order: Order) -> None:
    a = order.shipping_address
    tx.execute(
        INSERT_ORDER,
        (order.id, order.customer_id, order.total_cents, a.street, a.city, a.state, a.postal_code, a.country,
         db_time(order.placed_at), db_time(order.updated_at)),
    )
    for line_no, line in enumerate(order.lines, start=1):
        tx.execute(
            INSERT_LINE,
            (order.id, line.product_id, line.sku, line.name, line.unit_price_cents, line.quantity, line_no),
        )


def get_order(tx: Transaction, order_id: str) -> Order | None:
    row = tx.one(SELECT_ORDER, (order_id,))
    if row is None:
        return None
    lines = tuple(
        OrderLine(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in tx.all(SELECT_LINES, (order_id,))
    )
    return Order(
        id=row[0],
        customer_id=row[1],
        status=row[2],
        lines=lines,
        shipping_address=Address(row[3], row[4], row[5], row[6], row[7]),
        tracking_number=row[8],
        cancellation_reason=row[9],
        placed_at=from_db_time(row[10]),
        shipped_at=from_db_time(row[11]),
        delivered_at=from_db_time(row[12]),
        cancelled_at=from_db_time(row[13]),
        updated_at=from_db_time(row[14]),
        version=int(row[15]),
    )
