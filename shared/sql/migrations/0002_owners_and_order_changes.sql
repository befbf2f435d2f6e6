-- Who owns a customer record and who made each change to an order (issue: authorization).
-- owner_subject: the Entra ID subject (oid, else sub) of a self-service customer; NULL for
-- records created by staff. One record per subject: a filtered unique index, since many
-- records have no owner.
ALTER TABLE dbo.customers ADD owner_subject NVARCHAR(200) NULL;
GO
CREATE UNIQUE INDEX ux_customers_owner_subject ON dbo.customers (owner_subject)
    WHERE owner_subject IS NOT NULL;
GO
-- One row per version of an order: the change and its actor, for the order's audit trail.
CREATE TABLE dbo.order_changes (
    order_id NVARCHAR(36) NOT NULL CONSTRAINT fk_order_changes_order REFERENCES dbo.orders (id),
    version INT NOT NULL,
    change VARCHAR(64) NOT NULL,
    actor_subject NVARCHAR(200) NOT NULL,
    actor_roles NVARCHAR(400) NOT NULL,
    changed_at DATETIME2(3) NOT NULL,
    CONSTRAINT pk_order_changes PRIMARY KEY (order_id, version)
);
GO
