"""docs/requests.http is generated from docs/openapi.json, never edited on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli.requests_http import collection
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

DOCS = PROJECT_ROOT / "docs"


def _openapi() -> dict[str, object]:
    doc: dict[str, object] = json.loads((DOCS / "openapi.json").read_text())
    return doc


def _requests(text: str) -> dict[str, str]:
    blocks = text.split("\n### ")[1:]
    return {b.split("\n", 1)[0]: b for b in blocks}


def test_the_committed_collection_is_what_the_generator_makes_of_the_committed_openapi() -> None:
    committed = (DOCS / "requests.http").read_text()
    assert committed == collection(_openapi()), (
        "docs/requests.http is stale: run `./dev docs` (or `python -m cli.requests_http`)"
    )


def test_every_operation_of_the_document_has_a_request() -> None:
    doc = _openapi()
    text = collection(doc)
    paths: dict[str, dict[str, object]] = doc["paths"]  # type: ignore[assignment]
    for path, item in paths.items():
        for method in item:
            target = re.sub(r"\{(\w+)\}", r"{{\1}}", path)
            assert f"{method.upper()} {{{{baseUrl}}}}{target}" in text, (method, path)


def test_ids_are_shared_variables_so_a_hold_feeds_its_order_and_payment() -> None:
    text = collection(_openapi())
    assert re.search(r"^@hold_id = ", text, re.M) and re.search(r"^@order_id = ", text, re.M)
    orders = next(b for b in _requests(text).values() if "POST {{baseUrl}}/api/orders" in b)
    assert '"hold_id": "{{hold_id}}"' in orders
    holds = next(b for b in _requests(text).values() if "POST {{baseUrl}}/api/holds" in b)
    assert '"product_id": {{product_id}}' in holds  # an integer stays unquoted
    assert "Authorization: Bearer {{storefrontKey}}" in holds


def test_a_webhook_body_is_one_line_with_the_command_that_signs_it() -> None:
    text = collection(_openapi())
    hook = next(b for b in _requests(text).values() if "/api/payments/webhook" in b)
    body = hook.rstrip("\n").rsplit("\n", 1)[-1]
    json.loads(body.replace("{{order_id}}", "x").replace("{{hold_id}}", "x"))
    assert f"flashsale webhook sign --value-only --body '{body}'" in hook
    assert "X-Signature: {{signature}}" in hook
    assert ('"order_id"' in body) != ('"hold_id"' in body), "exactly one reference"


def test_named_examples_become_one_request_each() -> None:
    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/api/x": {
                "post": {
                    "operationId": "doX",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "examples": {
                                    "small": {"value": {"n": 1}},
                                    "large": {"value": {"n": 9}},
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
    }
    blocks = _requests(collection(doc))
    assert set(blocks) == {"doX (small)", "doX (large)"}
    assert blocks["doX (large)"].rstrip().endswith('"n": 9\n}')


def test_the_file_path_is_in_docs() -> None:
    assert Path(DOCS / "requests.http").exists()
