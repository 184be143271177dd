"""The app's OpenAPI document: FastAPI's, with the problem+json schema (gateway.contract), the
webhook's two bodies and the limits that come from settings; `install` makes it `app.openapi()`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.contract import ProblemDetails
from gateway.schemas import WebhookIn
from shared.settings import Settings


def _framework_422(response: dict[str, Any]) -> bool:
    """FastAPI's own 422 entry, added to every route with parameters: not what it sends."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _webhook_schemas() -> dict[str, dict[str, Any]]:
    """WebhookIn as what it is, one of two whole bodies: by order or by hold (the other id
    absent or null). The route reads the body by hand (the signature covers its bytes)."""
    full = WebhookIn.model_json_schema(ref_template="#/components/schemas/{model}")
    found: dict[str, dict[str, Any]] = {}
    for given, other, name, about in [
        ("order_id", "hold_id", "WebhookByOrder", "An event about an order, named by its id."),
        ("hold_id", "order_id", "WebhookByHold", "An event named by the hold the order is of."),
    ]:
        props = dict(full["properties"])
        named = {k: v for k, v in props[given].items() if k not in ("anyOf", "default")}
        props[given] = {**named, **next(b for b in props[given]["anyOf"] if b["type"] != "null")}
        props[other] = {"type": "null", "description": "Absent or null.", "examples": [None]}
        found[name] = {
            "title": name,
            "description": about,
            "type": "object",
            "properties": props,
            "required": [*full["required"], given],
            "additionalProperties": False,
        }
    found["WebhookIn"] = {
        "title": "WebhookIn",
        "description": full["description"],
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in found],
    }
    return found


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The app's OpenAPI document, with the problem schema and this deployment's limits."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if _framework_422(responses.get("422", {})):
                del responses["422"]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = {**problem, "title": "Problem"}
    schemas.update(_webhook_schemas())
    qty = schemas["HoldIn"]["properties"]["qty"]
    qty["maximum"] = settings.max_qty_per_hold  # a setting: the model cannot say it
    return doc


def install(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` the contract's document (made once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
