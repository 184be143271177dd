"""Storefront keys and rates in process: a request without a valid key is a 401 counted as
a security event, on the fast lane and the routes alike; customer ids are opaque tokens."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from shared.messages import CreateOrder, PlaceHolds
from tests.api.conftest import OTHER_KEY, SHOP_KEY, Gateway, MakeGateway
from tests.api.fakes import order_created, placed
from tests.helpers import assert_problem

pytestmark = pytest.mark.api

_BODY = {"product_id": 7, "qty": 1}


def _refused_keys() -> float:
    value = REGISTRY.get_sample_value("flashsale_auth_failures_total", {"kind": "storefront_key"})
    return value or 0.0


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_storefront_request_without_a_valid_key_is_401_and_counted(keyed: Gateway) -> None:
    before = _refused_keys()
    missing = await keyed.client.post("/api/holds", json=_BODY)
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = _bearer("not-a-key-" + "x" * 32)
    assert_problem(
        await keyed.client.post("/api/holds", json=_BODY, headers=wrong), 401, "unauthorized"
    )
    assert_problem(
        await keyed.client.get(f"/api/holds/{uuid.uuid4()}", headers=wrong), 401, "unauthorized"
    )
    assert_problem(
        await keyed.client.post("/api/orders", json={"hold_id": str(uuid.uuid4())}, headers=wrong),
        401,
        "unauthorized",
    )
    basic = {"Authorization": f"Basic {SHOP_KEY}"}
    assert_problem(
        await keyed.client.post("/api/holds", json=_BODY, headers=basic), 401, "unauthorized"
    )
    assert keyed.bus.sent == []  # nothing held, nothing ordered
    assert _refused_keys() == before + 5


async def test_a_known_key_is_the_storefront_its_commands_carry(keyed: Gateway) -> None:
    keyed.bus.answer(PlaceHolds, placed())
    keyed.bus.answer(CreateOrder, order_created())
    assert (
        await keyed.client.post("/api/holds", json=_BODY, headers=_bearer(SHOP_KEY))
    ).status_code == 201
    body = {"hold_id": str(uuid.uuid4())}
    r = await keyed.client.post("/api/orders", json=body, headers=_bearer(OTHER_KEY))
    assert r.status_code == 201
    [envelope] = keyed.bus.of(PlaceHolds)
    [order] = keyed.bus.of(CreateOrder)
    assert (envelope.holds[0].client_id, order.client_id) == ("shop", "other")


async def test_without_configured_keys_every_request_is_the_anonymous_storefront(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(PlaceHolds, placed())
    assert (await gateway.client.post("/api/holds", json=_BODY)).status_code == 201
    [envelope] = gateway.bus.of(PlaceHolds)
    assert envelope.holds[0].client_id == ""


async def test_one_customer_asking_too_fast_gets_429_with_retry_after(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(customer_rate_per_second=0.2, customer_rate_burst=3) as gw:
        gw.bus.answer(PlaceHolds, placed())
        answers = [
            await gw.client.post("/api/holds", json={**_BODY, "customer_id": "fast-1"})
            for _ in range(6)
        ]
        other = await gw.client.post("/api/holds", json={**_BODY, "customer_id": "calm-1"})
    assert [r.status_code for r in answers] == [201, 201, 201, 429, 429, 429]
    refused = assert_problem(answers[-1], 429, "rate_limited")
    assert refused["detail"] and int(answers[-1].headers["Retry-After"]) >= 1
    assert other.status_code == 201
    assert len(gw.bus.of(PlaceHolds)) == 4  # the refused ones took nothing


async def test_one_storefront_asking_too_fast_gets_429_and_the_others_do_not(
    make_gateway: MakeGateway,
) -> None:
    keys = [f"shop:{SHOP_KEY}", f"other:{OTHER_KEY}"]
    settings = {
        "storefront_keys": keys,
        "storefront_rate_per_second": 0.5,
        "storefront_rate_burst": 5,
    }
    async with make_gateway(**settings) as gw:
        answers = [
            await gw.client.get("/api/holds/not-a-uuid", headers=_bearer(SHOP_KEY))
            for _ in range(8)
        ]
        calm = await gw.client.get("/api/holds/not-a-uuid", headers=_bearer(OTHER_KEY))
    assert [r.status_code for r in answers] == [404] * 5 + [429] * 3
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[5:])
    assert_problem(answers[-1], 429, "rate_limited")
    assert calm.status_code == 404  # `other` still has its own allowance


@pytest.mark.parametrize(
    "customer_id",
    ["ａｌｉｃｅ", "alice\u200b", "alice ", "al ice", "alicé", "", "a" * 65, "al\u0000ice"],
)
async def test_lookalike_or_invisible_customer_ids_are_422(
    gateway: Gateway, customer_id: str
) -> None:
    body = {**_BODY, "customer_id": customer_id}
    problem = assert_problem(
        await gateway.client.post("/api/holds", json=body), 422, "validation_error"
    )
    assert "customer_id" in problem["detail"]
    assert gateway.bus.sent == []
