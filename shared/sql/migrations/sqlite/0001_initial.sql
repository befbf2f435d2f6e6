-- SQLite twin of ../0001_initial.sql (same tables, keys and checks; see that file for the why).
CREATE TABLE customers (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    credit_limit_cents INTEGER NOT NULL CHECK (credit_limit_cents >= 0),
    open_orders_cents INTEGER NOT NULL DEFAULT 0 CHECK (open_orders_cents >= 0),
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE products (
    id TEXT NOT NULL PRIMARY KEY,
    -- NOCASE: unique as on SQL Server's default case-insensitive collation.
    sku TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE orders (
    id TEXT NOT NULL PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    status TEXT NOT NULL CHECK (status IN ('placed', 'shipped', 'delivered', 'cancelled')),
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
    ship_street TEXT NOT NULL,
    ship_city TEXT NOT NULL,
    ship_state TEXT NOT NULL,
    ship_postal_code TEXT NOT NULL,
    ship_country TEXT NOT NULL,
    tracking_number TEXT NULL,
    cancellation_reason TEXT NULL,
    placed_at TEXT NOT NULL,
    shipped_at TEXT NULL,
    delivered_at TEXT NULL,
    cancelled_at TEXT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX ix_orders_customer_status ON orders (customer_id, status);
CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    sku TEXT NOT NULL,
    product_name TEXT NOT NULL,
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents > 0),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    line_no INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX ix_order_lines_product ON order_lines (product_id);
CREATE TABLE outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    aggregate_version INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    sent_at TEXT NULL
);
CREATE INDEX ix_outbox_unsent ON outbox (position) WHERE sent_at IS NULL;
CREATE TABLE idempotency_keys (
    idempotency_key TEXT NOT NULL PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response_headers TEXT NOT NULL,
    response_body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
