-- Write model: normalized rows, the transactional outbox and idempotency records.
-- Money is stored in minor units (cents, BIGINT) so SQL arithmetic is exact on every engine;
-- code converts to Decimal at the boundary. Ids are server-generated UUID strings, stored as
-- NVARCHAR because pyodbc binds str parameters as NVARCHAR: a CHAR column would be converted
-- implicitly and every lookup would scan (and lock) instead of seek.
CREATE TABLE dbo.customers (
    id NVARCHAR(36) NOT NULL CONSTRAINT pk_customers PRIMARY KEY,
    name NVARCHAR(200) NOT NULL,
    email NVARCHAR(254) NOT NULL,
    -- Lower-cased email: uniqueness is case-insensitive whatever the database collation.
    email_key NVARCHAR(254) NOT NULL CONSTRAINT uq_customers_email_key UNIQUE,
    credit_limit_cents BIGINT NOT NULL CONSTRAINT ck_customers_credit_limit CHECK (credit_limit_cents >= 0),
    -- Sum of the customer's placed and shipped orders: the credit check is one conditional UPDATE.
    open_orders_cents BIGINT NOT NULL CONSTRAINT df_customers_open_orders DEFAULT 0
        CONSTRAINT ck_customers_open_orders CHECK (open_orders_cents >= 0),
    version INT NOT NULL,
    created_at DATETIME2(3) NOT NULL,
    updated_at DATETIME2(3) NOT NULL
);
GO
CREATE TABLE dbo.products (
    id NVARCHAR(36) NOT NULL CONSTRAINT pk_products PRIMARY KEY,
    sku NVARCHAR(64) NOT NULL CONSTRAINT uq_products_sku UNIQUE,
    name NVARCHAR(200) NOT NULL,
    price_cents BIGINT NOT NULL CONSTRAINT ck_products_price CHECK (price_cents > 0),
    stock BIGINT NOT NULL CONSTRAINT ck_products_stock CHECK (stock >= 0),
    version INT NOT NULL,
    created_at DATETIME2(3) NOT NULL,
    updated_at DATETIME2(3) NOT NULL
);
GO
CREATE TABLE dbo.orders (
    id NVARCHAR(36) NOT NULL CONSTRAINT pk_orders PRIMARY KEY,
    customer_id NVARCHAR(36) NOT NULL CONSTRAINT fk_orders_customer REFERENCES dbo.customers (id),
    status VARCHAR(16) NOT NULL
        CONSTRAINT ck_orders_status CHECK (status IN ('placed', 'shipped', 'delivered', 'cancelled')),
    total_cents BIGINT NOT NULL CONSTRAINT ck_orders_total CHECK (total_cents >= 0),
    ship_street NVARCHAR(200) NOT NULL,
    ship_city NVARCHAR(100) NOT NULL,
    ship_state NVARCHAR(100) NOT NULL,
    ship_postal_code NVARCHAR(20) NOT NULL,
    ship_country NVARCHAR(100) NOT NULL,
    tracking_number NVARCHAR(100) NULL,
    cancellation_reason NVARCHAR(500) NULL,
    placed_at DATETIME2(3) NOT NULL,
    shipped_at DATETIME2(3) NULL,
    delivered_at DATETIME2(3) NULL,
    cancelled_at DATETIME2(3) NULL,
    updated_at DATETIME2(3) NOT NULL,
    version INT NOT NULL
);
GO
CREATE INDEX ix_orders_customer_status ON dbo.orders (customer_id, status);
GO
CREATE TABLE dbo.order_lines (
    order_id NVARCHAR(36) NOT NULL CONSTRAINT fk_order_lines_order REFERENCES dbo.orders (id),
    product_id NVARCHAR(36) NOT NULL CONSTRAINT fk_order_lines_product REFERENCES dbo.products (id),
    -- The name, sku and price the line was bought at: later catalog changes do not rewrite history.
    sku NVARCHAR(64) NOT NULL,
    product_name NVARCHAR(200) NOT NULL,
    unit_price_cents BIGINT NOT NULL CONSTRAINT ck_order_lines_price CHECK (unit_price_cents > 0),
    quantity INT NOT NULL CONSTRAINT ck_order_lines_quantity CHECK (quantity > 0),
    line_no INT NOT NULL,
    CONSTRAINT pk_order_lines PRIMARY KEY (order_id, product_id)
);
GO
CREATE INDEX ix_order_lines_product ON dbo.order_lines (product_id);
GO
CREATE TABLE dbo.outbox (
    position BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT pk_outbox PRIMARY KEY,
    event_id NVARCHAR(36) NOT NULL CONSTRAINT uq_outbox_event UNIQUE,
    event_type VARCHAR(64) NOT NULL,
    aggregate_type VARCHAR(32) NOT NULL,
    aggregate_id NVARCHAR(36) NOT NULL,
    aggregate_version INT NOT NULL,
    partition_key VARCHAR(64) NOT NULL,
    payload NVARCHAR(MAX) NOT NULL,
    occurred_at DATETIME2(3) NOT NULL,
    sent_at DATETIME2(3) NULL
);
GO
-- The relay scans only what is unsent; the outbox itself is kept for rebuilds.
CREATE INDEX ix_outbox_unsent ON dbo.outbox (position) WHERE sent_at IS NULL;
GO
CREATE TABLE dbo.idempotency_keys (
    -- Binary collation: keys are case-sensitive, as clients expect of an opaque token.
    idempotency_key NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT pk_idempotency_keys PRIMARY KEY,
    request_hash CHAR(64) NOT NULL,
    status_code INT NOT NULL,
    response_headers NVARCHAR(MAX) NOT NULL,
    response_body NVARCHAR(MAX) NOT NULL,
    created_at DATETIME2(3) NOT NULL
);
