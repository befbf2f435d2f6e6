"""Money: Decimal in code and JSON, integer cents in SQL and in summed read-model fields."""

from decimal import Decimal

CENT = Decimal("0.01")
# 15 digits, 2 of them decimals: the most a BIGINT of cents and a JSON double hold exactly.
MAX_MONEY = Decimal("9999999999999.99")


def to_cents(amount: Decimal | int) -> int:
    return int((Decimal(amount) / CENT).to_integral_value())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) * CENT).quantize(CENT)


def as_json_number(amount: Decimal) -> int | float:
    """Money as a JSON number: whole amounts as integers, others as the float whose repr
    is the 2-decimal amount (so the document and the Decimal compare exactly)."""
    exponent = amount.as_tuple().exponent
    if (
        amount == amount.to_integral_value()
        and isinstance(exponent, int)
        and exponent >= 0
    ):
        return int(amount)
    return float(amount)
