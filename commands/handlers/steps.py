"""Steps several handlers take alike: route ids, PATCH bodies, unique keys, addresses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from commands import models
from commands.domain import Address
from shared.errors import Conflict, ValidationFailed
from shared.sql.db import UniqueViolation


def require_changes(cmd: models.Patch) -> dict[str, Any]:
    # A null never gets this far: models.Patch refuses it per field.
    changes = cmd.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationFailed("Send at least one field to change.")
    return changes


@contextmanager
def unique_or_conflict(message: str) -> Iterator[None]:
    """A unique key the statement hits (email, sku) is a business conflict: 409."""
    try:
        yield
    except UniqueViolation:
        raise Conflict(message) from None


def address_of(address: models.Address) -> Address:
    return Address(
        address.street, address.city, address.state, address.postalCode, address.country
    )
