"""Create what the app expects to exist, locally: Cosmos database/containers and the SQL schema.

In Azure, Bicep creates the containers and the post-provision hook applies the
migrations; the local stack calls this instead. Idempotent. When the read model
is empty but the outbox is not (a new state dir for the Cosmos stand-in, or its
data deleted), the projections are rebuilt from the outbox here, through the same
code the sync functions run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from unittest import mock

log = logging.getLogger(__name__)


@contextlib.contextmanager
def app_settings(settings: Mapping[str, str]) -> Iterator[None]:
    """Run app code in this process against `settings` (a stack's), with fresh clients.

    The app caches one client per dependency per process; they are dropped on entry and
    on exit, so nothing created for one stack's settings is reused for another's."""
    from shared import cosmos
    from shared.publisher import publisher
    from shared.sql import db
    from sync.dead_letters import dead_letters

    def forget() -> None:
        cosmos.clear_caches()
        db.database.cache_clear()
        publisher.cache_clear()
        dead_letters.cache_clear()

    with mock.patch.dict(os.environ, settings):
        forget()
        try:
            yield
        finally:
            forget()


def provision(settings: Mapping[str, str]) -> None:
    with app_settings(settings):
        from shared import cosmos, outbox
        from shared.sql import db, migrate

        cosmos.ensure_containers()
        ensure_blob_containers()
        migrate.apply_migrations()
        _, newest = outbox.stats(db.database())
        if not newest:
            return
        from sync.rebuild import rebuild

        if read_model_is_empty():
            from sync.projections import PROJECTIONS

            for name in PROJECTIONS:
                log.info(
                    "read model empty, outbox at %s: rebuilt %s %s",
                    newest,
                    name,
                    rebuild(name),
                )
        elif sales_totals_of_another_layout():
            log.info(
                "daily sales written with another shard count: rebuilt sales-stats %s",
                rebuild("sales-stats"),
            )


def read_model_is_empty() -> bool:
    from shared.cosmos import container, container_specs

    for name in container_specs():
        if list(
            container(name).query_items(
                "SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True
            )
        ) != [0]:
            return False
    return True


def sales_totals_of_another_layout() -> bool:
    """Whether `daily-sales` holds totals written with another shard count than
    shared/read_model.SALES_SHARDS_PER_DAY (the stats read skips them): a persisted
    local read model from before a change of it."""
    from shared.cosmos import container
    from shared.read_model import AGGREGATE, SALES_SHARDS_PER_DAY

    counted = container("daily-sales").query_items(
        "SELECT VALUE COUNT(1) FROM c WHERE c.kind = @totals "
        "AND (NOT IS_DEFINED(c.shards) OR c.shards != @shards)",
        parameters=[
            {"name": "@totals", "value": AGGREGATE},
            {"name": "@shards", "value": SALES_SHARDS_PER_DAY},
        ],
        enable_cross_partition_query=True,
    )
    return sum(counted) > 0


def ensure_blob_containers() -> None:
    """The dead-letter and checkpoint containers (the app and the dev host also create
    them on first use; creating them here keeps a fresh or restarted Azurite tidy)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import ContainerClient

    from shared import config

    storage = config.topology()["storage"]
    for name in (storage["deadLetterContainer"], storage["checkpointContainer"]):
        with ContainerClient.from_connection_string(
            config.get("DeadLetterStorage"), name
        ) as container:
            try:
                container.create_container()
            except ResourceExistsError:
                pass
