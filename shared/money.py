"""Money: Decimal in code and JSON, integer cents in SQL and in summed read-model fields."""

from decimal import Decimal

CENT = Decimal("0.01")


def to_cents(amount: Decimal | int) -> int:
    return int((Decimal(amount) / CENT).to_integral_value())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) * CENT).quantize(CENT)
