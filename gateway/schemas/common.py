"""What every HTTP body shares: the limits of numbers and sale times, the example ids, and
`Strict` (request bodies refuse unknown fields and NUL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

MAX_BIGINT = 2**63 - 1


MAX_STOCK = 2**31 - 1
#: price × the largest hold must fit the database's BIGINT amount
MAX_PRICE_CENTS = 10**12
#: Sale times outside these years are refused: no sale runs then, and the database's and
#: Python's ranges differ past them (year 1 becomes -infinity, unreadable back).
SALE_YEARS = (2000, 2100)


def _sale_time(value: object) -> object:
    """A sale time is ISO 8601 text: a number is not a date."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time with a timezone, e.g. 2026-11-21T10:00:00Z")
    return value


def _in_sale_years(value: datetime) -> datetime:
    first, last = SALE_YEARS
    if not first <= value.astimezone(UTC).year <= last:
        raise ValueError(f"must be within the years {first} to {last}")
    return value


SaleTime = Annotated[
    AwareDatetime,
    BeforeValidator(_sale_time),
    AfterValidator(_in_sale_years),
    Field(
        description=f"ISO 8601 with a timezone, within the years {SALE_YEARS[0]}–{SALE_YEARS[1]}",
        json_schema_extra={
            "formatMinimum": f"{SALE_YEARS[0]}-01-01T00:00:00Z",
            "formatMaximum": f"{SALE_YEARS[1]}-12-31T23:59:59Z",
        },
    ),
]


#: What the NUL rule of Strict looks like in a JSON Schema.
NO_NUL = "^[^\\u0000]*$"


def _no_nul_in_schema(schema: dict[str, Any]) -> None:
    """Every free text field of the schema says that it refuses NUL (Strict's rule)."""
    for prop in schema.get("properties", {}).values():
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string" and not {"pattern", "format", "enum"} & set(branch):
                branch["pattern"] = NO_NUL


class Strict(BaseModel):
    """Request bodies refuse unknown fields, and text the database cannot store (NUL)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_nul_in_schema)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


#: The example ids of the OpenAPI document (holds and orders are named by opaque UUIDs).
HOLD_ID_EXAMPLE = "1f0c2a9e-6b3d-4c1e-9a57-2d8e4b6f0a13"
ORDER_ID_EXAMPLE = "7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87"
