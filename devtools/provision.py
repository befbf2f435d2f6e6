"""Create what the app expects to exist, locally: Cosmos database/containers and the SQL schema.

In Azure, Bicep creates the containers and the post-provision hook applies the
migrations; the local stack calls this instead. Idempotent. The local Cosmos
stand-in keeps nothing across restarts while SQLite keeps the outbox, so when
the read model is empty but the outbox is not, the projections are rebuilt from
the outbox here, through the same code the sync functions run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from unittest import mock

log = logging.getLogger(__name__)


def provision(settings: Mapping[str, str]) -> None:
    with mock.patch.dict(os.environ, settings):
        from shared import cosmos, outbox
        from shared.sql import db, migrate

        # The app caches its clients per process; these are created for the settings given here.
        cosmos.client.cache_clear()
        cosmos.container.cache_clear()
        db.database.cache_clear()
        try:
            cosmos.ensure_containers()
            ensure_dead_letter_container()
            migrate.apply_migrations()
            _, newest = outbox.stats(db.database())
            if newest and read_model_is_empty():
                from sync.projections import PROJECTIONS
                from sync.rebuild import rebuild

                for name in PROJECTIONS:
                    log.info(
                        "read model empty, outbox at %s: rebuilt %s %s",
                        newest,
                        name,
                        rebuild(name),
                    )
        finally:
            cosmos.client.cache_clear()
            cosmos.container.cache_clear()
            db.database.cache_clear()


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


def ensure_dead_letter_container() -> None:
    from azure.core.exceptions import ResourceExistsError

    from sync.dead_letters import dead_letters

    dead_letters.cache_clear()
    try:
        dead_letters().container.create_container()
    except ResourceExistsError:
        pass
    finally:
        dead_letters.cache_clear()
