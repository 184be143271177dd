"""docs/requests.http runs as written against the gateway: a hold, its order and its payment."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from shared.settings import PROJECT_ROOT
from shared.signature import sign
from tests.harness import ADMIN_TOKEN, WEBHOOK_SECRETS
from tests.helpers import make_product

pytestmark = pytest.mark.e2e


def _requests(text: str) -> list[tuple[str, str, dict[str, str], str | None]]:
    """(method, target, headers, body) of each request, variables still in place."""
    found = []
    for block in text.split("\n### ")[1:]:
        lines = [line for line in block.splitlines()[1:] if not line.startswith("#")]
        method, target = lines[0].split(" ", 1)
        blank = lines.index("") if "" in lines else len(lines)
        headers = dict(line.split(": ", 1) for line in lines[1:blank])
        body = "\n".join(lines[blank + 1 :]).strip() or None
        found.append((method, target, headers, body))
    return found


async def test_the_collection_places_a_hold_orders_it_and_pays_it(
    client: httpx.AsyncClient,
) -> None:
    text = (PROJECT_ROOT / "docs" / "requests.http").read_text()
    variables = dict(re.findall(r"^@(\w+) = (.*)$", text, re.M))
    product = await make_product(client, stock=5)
    variables |= {
        "baseUrl": str(client.base_url).rstrip("/"),
        "adminToken": ADMIN_TOKEN,
        "product_id": str(product["id"]),
    }

    def filled(value: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m[1]], value)

    answers: dict[str, int] = {}
    for method, target, headers, body in _requests(text):
        # a webhook event of its own: the documented example's key may have been used already
        fresh = f'"idempotency_key": "evt-{uuid.uuid4()}"'
        raw = re.sub(r'"idempotency_key": "[^"]*"', fresh, filled(body)) if body else None
        sent = {k: filled(v) for k, v in headers.items()}
        if "X-Signature" in sent and raw is not None:
            sent["X-Signature"] = sign(WEBHOOK_SECRETS[0], raw.encode(), int(time.time()))
        r = await client.request(method, filled(target), headers=sent, content=raw)
        assert r.status_code < 500, (method, target, r.status_code, r.text)
        path = target.replace("{{baseUrl}}", "")
        answers[f"{method} {path}"] = r.status_code
        if r.is_success and method == "POST" and path in ("/api/holds", "/api/orders"):
            key = "hold_id" if path == "/api/holds" else "order_id"
            variables[key] = r.json()[key]
    assert answers["POST /api/holds"] == 201, answers
    assert answers["POST /api/orders"] in (201, 202), answers
    assert answers["POST /api/payments/webhook"] in (200, 202), answers
    assert answers["GET /api/holds/{{hold_id}}"] == 200, answers
    assert answers["POST /api/admin/products/{{product_id}}/restock"] == 200, answers
