"""Create what the app expects to exist, locally: Cosmos database/containers and the SQL schema.

In Azure, Bicep creates the containers and the post-provision hook applies the
migrations; the local stack calls this instead. Idempotent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from unittest import mock


def provision(settings: Mapping[str, str]) -> None:
    with mock.patch.dict(os.environ, settings):
        from shared import cosmos
        from shared.sql import db, migrate

        # The app caches its clients per process; these are created for the settings given here.
        cosmos.client.cache_clear()
        db.database.cache_clear()
        try:
            cosmos.ensure_containers()
            migrate.apply_migrations()
        finally:
            cosmos.client.cache_clear()
            db.database.cache_clear()
