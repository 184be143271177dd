"""The OpenAPI document declares how storefronts authenticate (clients are generated from it)."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from shared.settings import Settings

pytestmark = pytest.mark.unit


def test_holds_and_orders_declare_the_storefront_key_scheme() -> None:
    doc = create_app(Settings()).openapi()
    assert doc["components"]["securitySchemes"]["storefrontKey"]["scheme"] == "bearer"
    for path, method in [
        ("/api/holds", "post"),
        ("/api/holds/{hold_id}", "get"),
        ("/api/orders", "post"),
        ("/api/orders/{order_id}", "get"),
    ]:
        assert {"storefrontKey": []} in doc["paths"][path][method]["security"], path
