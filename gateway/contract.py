"""The error side of the HTTP contract: every problem `code` the gateway sends, with its status,
and what the OpenAPI document shows, per operation and status, of the codes that can come back.

Routes declare their errors with `problems(...)` in their decorator; gateway.openapi makes the
app's document carry the problem+json schema and the limits that come from settings.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from gateway.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS

PROBLEM_REF = "#/components/schemas/Problem"


@dataclass(frozen=True)
class Code:
    """One problem code: its status, what it means, and what an answer with it looks like."""

    status: int
    means: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


_ERRORS = [{"loc": ["body", "qty"], "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal"}]  # fmt: skip

#: Every code the gateway answers with (gateway/problems.py, the routes, the front door in
#: gateway/server.py); tests/unit/test_openapi_contract.py keeps the list and the code in step.
CODES: dict[str, Code] = {
    "validation_error": Code(
        422, "the request does not match the schema (`errors` lists each mismatch)",
        "qty: Input should be greater than or equal to 1", {"errors": _ERRORS}),
    "customer_id_required": Code(
        422, "the product has a per-customer limit: the hold needs a `customer_id`",
        "product 1 has a per-customer limit: the hold needs a customer_id"),
    "unauthorized": Code(
        401, "the bearer token is missing or not valid here",
        "a valid storefront API key is required (Authorization: Bearer <key>)"),
    "invalid_signature": Code(
        401, "`X-Signature` is missing, malformed, too old or signed by no configured secret",
        "no signature matches"),
    "product_not_found": Code(404, "no product has this id", "product 1 does not exist"),
    "hold_not_found": Code(
        404, "no hold of this storefront has this id",
        "hold 1f0c2a9e-6b3d-4c1e-9a57-2d8e4b6f0a13 does not exist"),
    "order_not_found": Code(
        404, "no order of this storefront has this id",
        "order 7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87 does not exist"),
    "insufficient_stock": Code(
        409, "fewer units are available than asked for (`available` says how many)",
        "only 0 unit(s) of product 1 available", {"available": 0}),
    "sale_not_active": Code(
        409, "the product's sale has not started or is over",
        "product 1 is not on sale right now"),
    "customer_limit_exceeded": Code(
        409, "this customer would hold more than the product's `max_per_customer`",
        "this customer may not hold more of product 1"),
    "idempotency_key_reused": Code(
        409, "this idempotency key was used with another request body",
        "this Idempotency-Key was used with another request body"),
    "hold_expired": Code(
        409, "the hold expired before it became an order",
        "hold 1f0c2a9e-6b3d-4c1e-9a57-2d8e4b6f0a13 has expired"),
    "hold_already_used": Code(
        409, "the hold already became an order (`order_id`)",
        "hold 1f0c2a9e-6b3d-4c1e-9a57-2d8e4b6f0a13 already became order "
        "7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87",
        {"order_id": "7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87"}),
    "body_too_large": Code(
        413, "the body is larger than the gateway accepts (FLASHSALE_MAX_BODY_BYTES)",
        "bodies are limited to 65536 bytes"),
    "rate_limited": Code(
        429, "this storefront (or customer) asks faster than its rate: wait `Retry-After`",
        "too many requests from this storefront; retry after the Retry-After delay"),
    "overloaded": Code(
        429, "this gateway process is answering as many requests as it may: wait "
        "`Retry-After` (or the finer `Retry-After-Ms`)",
        "too many holds waiting for this product's partition; retry shortly",
        {"retry_after_ms": 200}),
    "unavailable": Code(
        503, "the broker or the database is unavailable, or no worker answered in time; "
        "`detail` says whether the request may have taken effect",
        "the database is unavailable; retry shortly"),
    "product_unavailable": Code(
        503, "the product's stored data cannot be decided on (an operator is told); retry "
        "after `Retry-After`",
        "product 1 cannot be decided: its stored data is invalid (the operator is told); "
        "the hold was not placed"),
}  # fmt: skip

#: Codes an operation of the API may get whatever it is: the front door sheds a flood, and
#: any operation needs the database or the broker.
COMMON = ("overloaded", "unavailable")

_RETRY_AFTER = {
    "description": "Seconds to wait before asking again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "example": RETRY_AFTER_SECONDS},
}
_WWW_AUTHENTICATE = {
    "description": "`Bearer`: the token scheme to use.",
    "required": True,
    "schema": {"type": "string", "example": "Bearer"},
}


class ValidationErrorItem(BaseModel):
    """One way the request does not match the schema."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's path.",
        examples=[["body", "qty"]],
    )
    msg: str = Field(description="What is wrong.", examples=["Input should be at least 1"])
    type: str = Field(description="The kind of error.", examples=["greater_than_equal"])


def _absent_not_null(schema: dict[str, Any]) -> None:
    """An extension member the code does not give is absent, not null: no default shown."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None and "anyOf" not in prop:
            del prop["default"]


class ProblemDetails(BaseModel):
    """An error (RFC 9457 problem details): `code` says which, for programs; `detail`, for
    people. Extension members appear with the codes named in their descriptions."""

    model_config = ConfigDict(json_schema_extra=_absent_not_null)

    type: str = Field(
        description="`urn:flashsale:problem:<code>`.",
        examples=["urn:flashsale:problem:insufficient_stock"],
    )
    title: str = Field(description="The status's reason phrase.", examples=["Conflict"])
    status: int = Field(description="The HTTP status, repeated.", examples=[409])
    detail: str = Field(
        description="What happened to this request, in words.",
        examples=["only 0 unit(s) of product 1 available"],
    )
    code: str = Field(
        description="What happened, for programs: one of the codes the response lists.",
        examples=["insufficient_stock"],
    )
    instance: str | SkipJsonSchema[None] = Field(
        default=None, description="The path of the request.", examples=["/api/holds"]
    )
    available: int | SkipJsonSchema[None] = Field(
        default=None, description="`insufficient_stock`: units still available.", examples=[0]
    )
    order_id: str | None = Field(
        default=None,
        description="`hold_already_used`: the order the hold became.",
        examples=["7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87"],
    )
    errors: list[ValidationErrorItem] | SkipJsonSchema[None] = Field(
        default=None, description="`validation_error`: every mismatch."
    )
    retry_after_ms: int | SkipJsonSchema[None] = Field(
        default=None,
        description="`overloaded`: milliseconds to wait (finer than `Retry-After`).",
        examples=[200],
    )
    checks: dict[str, str] | SkipJsonSchema[None] = Field(
        default=None,
        description="`GET /readyz`: what was checked, each `ok` or why not.",
        examples=[{"broker": "ok", "database": "unreachable: ConnectionRefusedError"}],
    )


def example(code: str, detail: str | None = None) -> dict[str, Any]:
    """A whole problem body with `code`, as the gateway sends it."""
    found = CODES[code]
    return {
        "type": f"urn:flashsale:problem:{code}",
        "title": HTTPStatus(found.status).phrase,
        "status": found.status,
        "detail": detail or found.detail,
        "code": code,
        **found.extra,
    }


def problems(
    *codes: str, common: bool = True, details: dict[str, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: per status, the problem+json schema limited to the `codes`
    of that status (with COMMON unless `common=False`), an example of each (its `detail`
    from `details` where the route words it otherwise), and headers."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in (*codes, *(COMMON if common else ())):
        if code not in by_status[CODES[code].status]:
            by_status[CODES[code].status].append(code)
    return {
        status: _response(status, found, details or {})
        for status, found in sorted(by_status.items())
    }


def _response(status: int, codes: list[str], details: dict[str, str]) -> dict[str, Any]:
    schema = {
        "allOf": [{"$ref": PROBLEM_REF}],
        "properties": {"code": {"type": "string", "enum": codes}},
    }
    examples = {c: {"summary": CODES[c].means, "value": example(c, details.get(c))} for c in codes}
    means = "; ".join(f"`{c}`: {CODES[c].means}" for c in codes)
    answer: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}. {means}.",
        "content": {PROBLEM_JSON: {"schema": schema, "examples": examples}},
    }
    if status in (429, 503):
        answer["headers"] = {"Retry-After": _RETRY_AFTER}
    elif "unauthorized" in codes:
        answer["headers"] = {"WWW-Authenticate": _WWW_AUTHENTICATE}
    return answer


def header(description: str, kind: str = "string") -> dict[str, Any]:
    """A response header the answer always carries."""
    return {"description": description, "required": True, "schema": {"type": kind}}


def link(
    operation_id: str, parameters: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    """An OpenAPI link: what of this answer the next operation takes (its parameters, or the
    fields of its body)."""
    found: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        found["parameters"] = parameters
    if body:
        found["requestBody"] = body
    return found
