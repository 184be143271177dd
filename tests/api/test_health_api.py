"""Liveness, readiness and metrics in process: readiness names what is missing, production
serves neither metrics nor docs on the API port."""

from __future__ import annotations

import pytest

from tests.api.conftest import Gateway, MakeGateway
from tests.helpers import assert_problem

pytestmark = pytest.mark.api

PRODUCTION = {
    "env": "production",
    "admin_token": "a" * 40,
    "webhook_secrets": ["w" * 40],
    "storefront_keys": [f"shop:{'k' * 40}"],
}


async def test_liveness_needs_neither_broker_nor_database(gateway: Gateway) -> None:
    gateway.bus.open = False
    r = await gateway.client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_readiness_is_503_naming_the_database_that_does_not_answer(
    gateway: Gateway,
) -> None:
    r = await gateway.client.get("/readyz")
    problem = assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"
    assert problem["checks"] == {
        "broker": "ok",
        "database": "unreachable: ConnectionRefusedError",
    }


async def test_readiness_names_the_broker_too_when_it_is_away(gateway: Gateway) -> None:
    gateway.bus.open = False
    problem = assert_problem(await gateway.client.get("/readyz"), 503, "unavailable")
    assert problem["checks"]["broker"] == "unreachable"
    assert problem["detail"].startswith("not ready: broker unreachable, database unreachable")


async def test_metrics_and_docs_are_served_outside_production(gateway: Gateway) -> None:
    r = await gateway.client.get("/metrics")
    assert r.status_code == 200 and "flashsale_" in r.text
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    assert {"/api/products", "/api/holds", "/api/orders", "/api/payments/webhook"} <= set(paths)
    assert (await gateway.client.get("/docs")).status_code == 200


async def test_production_serves_neither_metrics_nor_docs_on_the_api_port(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(**PRODUCTION) as gw:
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
            assert_problem(await gw.client.get(path), 404, "not_found")
        assert (await gw.client.get("/healthz")).status_code == 200
