"""Steps several handlers take alike: route ids, PATCH bodies, unique keys, addresses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from commands import models
from commands.domain import Address
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.formats import UUID_RE
from shared.sql.db import UniqueViolation


def route_id(value: str, what: str) -> str:
    """A route id; anything that is not a UUID cannot name an existing resource (404)."""
    value = value.lower()
    if not UUID_RE.match(value):
        raise NotFound(f"{what} {value} does not exist.")
    return value


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
