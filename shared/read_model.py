"""Facts about the read model's documents that the projections write and the queries read."""

# Beside its contributions (one per order), a logical partition of `customer-orders`,
# `product-sales` or `daily-sales` holds one aggregate document with this id and kind.
AGGREGATE_ID = "totals"
AGGREGATE = "totals"
CONTRIBUTION = "contribution"
