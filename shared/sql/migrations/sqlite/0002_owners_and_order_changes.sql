-- SQLite twin of ../0002_owners_and_order_changes.sql (see that file for the why).
ALTER TABLE customers ADD owner_subject TEXT NULL;
CREATE UNIQUE INDEX ux_customers_owner_subject ON customers (owner_subject)
    WHERE owner_subject IS NOT NULL;
CREATE TABLE order_changes (
    order_id TEXT NOT NULL REFERENCES orders (id),
    version INTEGER NOT NULL,
    change TEXT NOT NULL,
    actor_subject TEXT NOT NULL,
    actor_roles TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (order_id, version)
);
