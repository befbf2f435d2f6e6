"""The projections: name -> pure plan function. Consumer groups and containers are in topology.json."""

from __future__ import annotations

from shared import config
from sync import customer_view, order_detail, product_view, sales_stats
from sync.runner import Plan

PROJECTIONS: dict[str, Plan] = {
    order_detail.NAME: order_detail.plan,
    customer_view.NAME: customer_view.plan,
    product_view.NAME: product_view.plan,
    sales_stats.NAME: sales_stats.plan,
}


def consumer_group(projection: str) -> str:
    return config.topology()["projections"][projection]["consumerGroup"]


def containers(projection: str) -> list[str]:
    return config.topology()["projections"][projection]["containers"]
