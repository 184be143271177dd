"""Schemathesis hooks of tests/e2e/test_openapi_contract.py (tests/e2e/schemathesis.toml names
them): the credentials each security scheme of the OpenAPI document asks for, and the rules the
document states in words where JSON Schema cannot, so that what is generated as valid is valid.

The webhook's X-Signature covers the exact bytes sent, so it is made on the prepared request.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import requests
import schemathesis

from gateway.schemas import SALE_YEARS
from shared.signature import sign

Case = schemathesis.Case[Any]

STOREFRONT_KEY = "CONTRACT_STOREFRONT_KEY"
ADMIN_TOKEN = "CONTRACT_ADMIN_TOKEN"
WEBHOOK_SECRET = "CONTRACT_WEBHOOK_SECRET"


class _Bearer:
    variable = ""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return os.environ[self.variable]

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth(refresh_interval=None).apply_to(path_regex="^/api/admin/")
class AdminToken(_Bearer):
    variable = ADMIN_TOKEN


@schemathesis.auth(refresh_interval=None).apply_to(path_regex="^/api/(holds|orders)")
class StorefrontKey(_Bearer):
    variable = STOREFRONT_KEY


class SignedBody(requests.auth.AuthBase):
    """X-Signature of the body as it goes on the wire."""

    def __call__(self, r: Any) -> Any:
        body = r.body or b""
        raw = body.encode() if isinstance(body, str) else body
        r.headers["X-Signature"] = sign(os.environ[WEBHOOK_SECRET], raw, int(time.time()))
        return r


schemathesis.auth.set_from_requests(SignedBody()).apply_to(path="/api/payments/webhook")  # type: ignore[attr-defined]


#: JSON numbers beyond ±2^53 are read as doubles by most validators (RFC 8259 §6): a case
#: generated as valid there may be past the document's `maximum` for the server, which is exact.
EXACT_INTEGERS = 2**53


def _plain_integers(value: object) -> bool:
    """Every number is an integer written without a fraction (the API has no other numbers,
    and refuses 1.0 where JSON Schema's `integer` admits it), within EXACT_INTEGERS."""
    if isinstance(value, dict):
        return all(_plain_integers(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain_integers(v) for v in value)
    if isinstance(value, float):
        return False
    return isinstance(value, bool) or not isinstance(value, int) or abs(value) < EXACT_INTEGERS


def _sale_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return None


def _within_the_sale_rules(body: dict[str, Any]) -> bool:
    """ProductIn's rules in words: sale times within SALE_YEARS (in UTC), the end after the
    start."""
    times = {k: _sale_time(body[k]) for k in ("sale_starts_at", "sale_ends_at") if body.get(k)}
    first, last = SALE_YEARS
    if any(t is None or not first <= t.year <= last for t in times.values()):
        return False
    start, end = times.get("sale_starts_at"), times.get("sale_ends_at")
    return start is None or end is None or start < end


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: Case) -> bool:
    """Cases meant to be valid keep to what the document says in words."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    body = case.body if isinstance(case.body, dict) else {}
    if not all(_plain_integers(part) for part in (body, case.query, case.path_parameters)):
        return False
    return case.operation.path != "/api/admin/products" or _within_the_sale_rules(body)


#: 422s that valid data may get, because they depend on what is stored, which no schema can
#: show: a hold without `customer_id` on a product with a per-customer limit, and a restock
#: past the largest stock_total. tests/e2e/schemathesis.toml lets these two operations answer
#: valid data with 422; this check holds them to these reasons.
STATE_DEPENDENT_422 = {
    "POST /api/holds": lambda case, body: (
        body.get("code") == "customer_id_required"
        and not (case.body if isinstance(case.body, dict) else {}).get("customer_id")
    ),
    "POST /api/admin/products/{product_id}/restock": lambda case, body: (
        body.get("code") == "validation_error"
        and str(body.get("detail", "")).startswith("add: stock_total would exceed")
    ),
}


@schemathesis.check
def valid_data_is_refused_only_for_stored_state(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A 422 for valid data on the operations of STATE_DEPENDENT_422 has one of their reasons."""
    meta = case.meta
    allowed = STATE_DEPENDENT_422.get(case.operation.label)
    if allowed is None or meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 422 and not allowed(case, response.json()):
        raise AssertionError(f"valid data refused for another reason: {response.text}")
    return None
