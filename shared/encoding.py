"""JSON encoding shared by HTTP responses and events: Decimal money as exact JSON numbers."""

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from shared.money import as_json_number


def to_jsonable(value: Any) -> Any:
    """JSON-ready copy: Decimals become numbers (2-decimal money round-trips through a float's repr)."""
    if isinstance(value, Decimal):
        return as_json_number(value)
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="python", by_alias=True))
    if isinstance(value, Mapping):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
