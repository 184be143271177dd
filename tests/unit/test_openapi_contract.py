"""The OpenAPI document is a contract a storefront can generate a client from: the committed
file is what the code makes, every error is the problem+json body with the codes the gateway
really sends, fields are described with examples, and security is declared as schemes."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from gateway import contract
from gateway.app import create_app
from gateway.routes.holds import _REFUSALS, _refused
from shared.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit

DOCS = PROJECT_ROOT / "docs"
#: Answers of the front door and the framework outside any documented operation: an unknown
#: path or method, a request that is not HTTP, a bug.
NOT_OF_AN_OPERATION = {
    "not_found",
    "method_not_allowed",
    "http_error",
    "internal_error",
    "bad_request",
    "header_too_large",
    "header_timeout",
}
OPERATION_ID = re.compile(r"^(get|list|create|restock|record)[A-Z][A-Za-z]+$")


def _document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(create_app(Settings()).openapi()))
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    paths: dict[str, dict[str, Any]] = doc["paths"]
    return [(path, method, op) for path, item in paths.items() for method, op in item.items()]


def _resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` validatable on its own: the document's components beside it."""
    return {**schema, "components": doc["components"]}


def test_the_committed_openapi_document_is_what_the_code_makes() -> None:
    committed = json.loads((DOCS / "openapi.json").read_text())
    assert committed == _document(), "docs/openapi.json is stale: run `./dev docs`"


def test_every_error_is_problem_json_with_the_codes_of_its_status_and_an_example_of_each() -> None:
    doc = _document()
    problem = _resolved(doc, {"$ref": contract.PROBLEM_REF})
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            where = f"{method.upper()} {path} {status}"
            assert list(response["content"]) == ["application/problem+json"], where
            media = response["content"]["application/problem+json"]
            codes = media["schema"]["properties"]["code"]["enum"]
            assert media["schema"]["allOf"] == [{"$ref": contract.PROBLEM_REF}], where
            assert codes and set(media["examples"]) == set(codes), where
            for code, example in media["examples"].items():
                assert example["value"]["code"] == code and example["value"]["status"] == int(
                    status
                ), where
                jsonschema.validate(example["value"], _resolved(doc, media["schema"]))
                jsonschema.validate(example["value"], problem)
            if int(status) in (429, 503):
                assert response["headers"]["Retry-After"]["required"], where


def test_validation_errors_are_documented_as_the_gateway_sends_them() -> None:
    text = json.dumps(_document())
    assert "HTTPValidationError" not in text  # FastAPI's own body, which the gateway never sends
    doc = _document()
    hold_422 = doc["paths"]["/api/holds"]["post"]["responses"]["422"]
    example = hold_422["content"]["application/problem+json"]["examples"]["validation_error"]
    assert example["value"]["errors"][0]["loc"] == ["body", "qty"]


def _codes_sent() -> set[tuple[int, str]]:
    """(status, code) of every problem the gateway's code can raise or write."""
    sent: set[tuple[int, str]] = set()
    for path in (PROJECT_ROOT / "gateway").rglob("*.py"):
        text = path.read_text()
        for status, code in re.findall(r'(?:Problem|_refuse)\(\s*(\d{3}),\s*"(\w+)"', text):
            sent.add((int(status), code))
        for code in re.findall(r'"code": "(\w+)"', text):
            sent.add((0, code))  # a body written by hand (the shed 429, the readiness 503)
    for reason in _REFUSALS:
        refused = _refused(reason, 1, 0)  # type: ignore[arg-type]  # every key is a reason
        sent.add((refused.status, refused.code))
    return sent


def test_every_problem_code_the_gateway_sends_is_documented_with_its_status() -> None:
    sent = _codes_sent()
    by_code = {code: status for status, code in sent if status}
    for code in {code for _, code in sent} - NOT_OF_AN_OPERATION:
        assert code in contract.CODES, f"{code} is sent but not in gateway.contract.CODES"
        if code in by_code:
            assert contract.CODES[code].status == by_code[code], code
    assert set(contract.CODES) <= {code for _, code in sent}, "a documented code is never sent"


def test_each_operation_names_its_problem_codes_the_same_way_in_every_place() -> None:
    for path, method, op in _operations(_document()):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                for code in response["content"]["application/problem+json"]["examples"]:
                    assert contract.CODES[code].status == int(status), (path, method, code)


def test_operation_ids_read_as_verbs_and_nouns() -> None:
    ids = {op["operationId"] for _, _, op in _operations(_document())}
    assert {"listProducts", "getProduct", "createHold", "getHold", "createOrder", "getOrder"} <= ids
    assert {"createProduct", "restockProduct", "recordPayment"} <= ids
    for found in ids - {"getLiveness", "getReadiness"}:
        assert OPERATION_ID.match(found), found


def test_admin_token_and_webhook_signature_are_security_schemes() -> None:
    doc = _document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["adminToken"] == {**schemes["adminToken"], "type": "http", "scheme": "bearer"}
    assert schemes["webhookSignature"]["type"] == "apiKey"
    assert (schemes["webhookSignature"]["in"], schemes["webhookSignature"]["name"]) == (
        "header",
        "X-Signature",
    )
    expected = {
        ("/api/admin/products", "post"): "adminToken",
        ("/api/admin/products/{product_id}/restock", "post"): "adminToken",
        ("/api/payments/webhook", "post"): "webhookSignature",
        ("/api/holds", "post"): "storefrontKey",
        ("/api/orders/{order_id}", "get"): "storefrontKey",
    }
    for (path, method), scheme in expected.items():
        op = doc["paths"][path][method]
        assert op["security"] == [{scheme: []}], (path, method)
        # the credential is the scheme, not a parameter of its own
        names = {p["name"].lower() for p in op.get("parameters", [])}
        assert not names & {"authorization", "x-signature"}, (path, method)


def test_every_field_of_every_body_has_a_description_and_an_example() -> None:
    schemas = _document()["components"]["schemas"]
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
            if name != "Problem" or field != "errors":  # its items are ValidationErrorItem
                assert "examples" in prop or "example" in prop, f"{name}.{field}: no example"


def test_the_hold_qty_limit_of_the_deployment_is_in_its_document() -> None:
    doc = create_app(Settings(max_qty_per_hold=3)).openapi()
    assert doc["components"]["schemas"]["HoldIn"]["properties"]["qty"]["maximum"] == 3


@pytest.mark.parametrize("body", [b'{"hold_id": "\xff"}', b"[" * 5000 + b"]" * 5000])
async def test_a_body_that_cannot_even_be_decoded_is_the_documented_422(body: bytes) -> None:
    app = create_app(Settings())  # its lifespan does not run: the body is read first
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        r = await client.post(
            "/api/orders", content=body, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_error"
    unreadable = {"loc": ["body"], "msg": "the body is not JSON", "type": "json_invalid"}
    assert r.json()["errors"] == [unreadable]
