"""Products and the admin endpoints in process: the admin token (401), bodies and parameters
(422), the 404 problem of an unknown route, and product pages from the process's stock levels
(ETag, Cache-Control, 304)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.messages import Restock
from tests.api.conftest import Gateway
from tests.helpers import ADMIN, assert_problem

pytestmark = pytest.mark.api

_PRODUCT = {"name": "x", "price_cents": 1, "stock": 1}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/admin/products", _PRODUCT), ("/api/admin/products/7/restock", {"add": 5})],
)
async def test_admin_endpoints_refuse_without_the_token_and_change_nothing(
    gateway: Gateway, headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    """A refused token reaches neither the database (away here) nor the partition."""
    r = await gateway.client.post(path, json=body, headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert gateway.bus.sent == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "price_cents": 1, "stock": 1},
        {"name": "x", "price_cents": -1, "stock": 1},
        {"name": "x", "price_cents": 1, "stock": -1},
        {"name": "x", "price_cents": 1},
        {"name": "x", "price_cents": 1, "stock": 1, "colour": "red"},
        {"name": "x", "price_cents": 1, "stock": 1, "max_per_customer": 0},
        {
            "name": "x",
            "price_cents": 1,
            "stock": 1,
            "sale_starts_at": "2026-01-02T00:00:00Z",
            "sale_ends_at": "2026-01-01T00:00:00Z",
        },
        {"name": "x", "price_cents": 1, "stock": 1, "sale_starts_at": "2026-01-02T00:00:00"},
        {"name": "x", "price_cents": 1, "stock": 1, "sale_starts_at": "tomorrow"},
        {"name": "x", "price_cents": "lots", "stock": 1},
        {"name": "x", "price_cents": 1.5, "stock": 1},
        {"name": "a\u0000b", "price_cents": 1, "stock": 1},
        {"name": "x", "price_cents": 10**15, "stock": 1},
    ],
)
async def test_bad_product_bodies_are_422_before_the_database(
    gateway: Gateway, body: dict[str, object]
) -> None:
    """The database is away: a 422 means the body was refused before any write was tried."""
    r = await gateway.client.post("/api/admin/products", json=body, headers=ADMIN)
    assert_problem(r, 422, "validation_error")


@pytest.mark.parametrize("body", [{"add": 0}, {"add": -1}, {"add": "5"}, {}, {"add": 1, "x": 1}])
async def test_bad_restock_bodies_are_422_and_reach_no_partition(
    gateway: Gateway, body: dict[str, object]
) -> None:
    r = await gateway.client.post("/api/admin/products/7/restock", json=body, headers=ADMIN)
    assert_problem(r, 422, "validation_error")
    assert gateway.bus.of(Restock) == []


async def test_malformed_json_is_422_not_500(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/api/admin/products",
        content=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation_error")


async def test_a_body_nested_too_deep_or_not_utf8_is_422(gateway: Gateway) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    for content in (b"[" * 100_000 + b"]" * 100_000, b'{"name": "\xff"}'):
        r = await gateway.client.post("/api/admin/products", content=content, headers=headers)
        assert_problem(r, 422, "validation_error")


async def test_non_numeric_product_id_is_a_validation_problem(gateway: Gateway) -> None:
    assert_problem(await gateway.client.get("/api/products/abc"), 422, "validation_error")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"offset": 3_000_000_000}, {"limit": "ten"}],
)
async def test_list_limits_out_of_range_are_422(gateway: Gateway, params: dict[str, Any]) -> None:
    assert_problem(
        await gateway.client.get("/api/products", params=params), 422, "validation_error"
    )


async def test_unknown_route_is_a_404_problem(gateway: Gateway) -> None:
    assert_problem(await gateway.client.get("/api/nothing-here"), 404, "not_found")


async def test_a_wrong_method_is_a_405_problem(gateway: Gateway) -> None:
    assert_problem(await gateway.client.delete("/api/holds"), 405, "method_not_allowed")


async def test_a_product_read_with_the_database_away_is_503_retry_shortly(gateway: Gateway) -> None:
    r = await gateway.client.get("/api/products/7")
    problem = assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1" and "retry shortly" in problem["detail"]


def _install(gw: Gateway, product_id: int, version: int) -> None:
    """The product as a database read showed it: this process can vouch for its page."""
    snapshot = gw.requester.snapshot
    row = {
        "id": product_id,
        "name": "sneaker",
        "price_cents": 12900,
        "max_per_customer": None,
        "sale_starts_at": None,
        "sale_ends_at": None,
        "stock_total": 10,
        "available": 4,
        "version": version,
    }
    snapshot.install(row, snapshot.reading())


async def test_a_product_page_from_the_stock_levels_has_an_etag_and_a_shared_second(
    gateway: Gateway,
) -> None:
    _install(gateway, 7, version=42)
    r = await gateway.client.get("/api/products/7")
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["available"], r.json()["stock_total"]) == (7, 4, 10)
    assert r.headers["ETag"] == 'W/"42"'
    assert r.headers["Cache-Control"] == "public, max-age=1"
    assert r.headers["Cache-Status"].startswith("flashsale-gateway; hit")
    again = await gateway.client.get("/api/products/7", headers={"If-None-Match": 'W/"42"'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == 'W/"42"'


async def test_an_exact_read_asked_for_goes_to_the_database(gateway: Gateway) -> None:
    _install(gateway, 7, version=42)
    for asked in ({"Cache-Control": "no-cache"}, {"Pragma": "no-cache"}):
        r = await gateway.client.get("/api/products/7", headers=asked)
        assert_problem(r, 503, "unavailable")  # the database is away: no answer from memory
    r = await gateway.client.get("/api/products/7", params={"consistent": "true"})
    assert_problem(r, 503, "unavailable")


async def test_a_page_is_dated_by_when_its_level_was_known(gateway: Gateway) -> None:
    _install(gateway, 8, version=1)
    r = await gateway.client.get("/api/products/8")
    assert int(r.headers["Age"]) >= 0
    assert datetime.fromisoformat(r.json()["as_of"]) <= datetime.now(UTC)
