"""Facts about the read model's documents that the projections write and the queries read."""

# Beside its contributions (one per order), a logical partition of `customer-orders`,
# `product-sales` or `daily-sales` holds one aggregate document with this id and kind.
AGGREGATE_ID = "totals"
AGGREGATE = "totals"
CONTRIBUTION = "contribution"

# `daily-sales` is sharded per day: each shard of a day is its own logical partition
# (10,000 RU/s at most: ~500 orders/s at ~20 RU per order's batch), so 4 carry ~2,000
# orders/s a day; every range read sums all of a day's shards, so more cost each read.
# The totals documents carry the count they were written with, and the read sums only
# the current one's: a change is deployed with a rebuild of sales-stats (the local stack
# rebuilds a read model of another count on start).
SALES_SHARDS_PER_DAY = 4
