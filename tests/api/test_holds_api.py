"""POST /api/holds in process: every refusal, validation and outage answer of the route and
of the fast lane, with the inventory partition faked at the broker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from shared import topology
from shared.bus import ReplyTimeout
from shared.messages import HoldRefused, PlaceHolds
from shared.messages.stock_levels import Level
from tests.api.conftest import Gateway, MakeGateway
from tests.api.fakes import (
    broker_down,
    broker_refused,
    confirm_lost,
    decided,
    placed,
    placed_once,
    raising,
)
from tests.helpers import assert_problem

pytestmark = pytest.mark.api


def _hold(product_id: int = 7, qty: int = 1, **kw: Any) -> dict[str, Any]:
    return {"product_id": product_id, "qty": qty, **kw}


async def test_a_placed_hold_is_201_with_its_location_and_one_command_to_its_partition(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(PlaceHolds, placed())
    r = await gateway.client.post("/api/holds", json=_hold(qty=2))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["Location"] == f"/api/holds/{body['hold_id']}"
    assert {k: body[k] for k in ("product_id", "qty", "status", "order_id")} == {
        "product_id": 7,
        "qty": 2,
        "status": "active",
        "order_id": None,
    }
    [sent] = gateway.bus.sent
    assert sent.exchange == topology.INVENTORY_EXCHANGE.name
    assert sent.routing_key == topology.product_routing_key(7, gateway.settings.partitions)
    [cmd] = sent.message.holds
    assert str(cmd.hold_id) == body["hold_id"] and cmd.qty == 2 and cmd.deadline is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"qty": 1}, "product_id"),
        ({"product_id": 7, "qty": 0}, "qty"),
        ({"product_id": 7, "qty": 11}, "qty"),
        ({"product_id": 7, "qty": -2}, "qty"),
        ({"product_id": 7, "qty": "two"}, "qty"),
        ({"product_id": 7, "qty": "1"}, "qty"),
        ({"product_id": 7, "qty": 1.0}, "qty"),
        ({"product_id": 7, "qty": True}, "qty"),
        ({"product_id": 7, "qty": 1, "customer_id": "x" * 65}, "customer_id"),
        ({"product_id": 7, "qty": 1, "customer_id": "a\u0000b"}, "customer_id"),
        ({"product_id": 7, "qty": 1, "color": "red"}, "color"),
        ({"product_id": 0, "qty": 1}, "product_id"),
        ({"product_id": 2**63, "qty": 1}, "product_id"),
    ],
)
async def test_invalid_hold_requests_are_422_and_never_reach_the_partition(
    gateway: Gateway, body: dict[str, object], field: str
) -> None:
    problem = assert_problem(
        await gateway.client.post("/api/holds", json=body), 422, "validation_error"
    )
    assert field in problem["detail"]
    assert problem["errors"] and problem["instance"] == "/api/holds"
    assert gateway.bus.sent == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"product_id=7&qty=1", "text/plain"),
        (b"", "application/json"),
    ],
)
async def test_a_body_that_is_no_hold_is_422(
    gateway: Gateway, content: bytes, content_type: str
) -> None:
    r = await gateway.client.post(
        "/api/holds", content=content, headers={"Content-Type": content_type}
    )
    assert_problem(r, 422, "validation_error")
    assert gateway.bus.sent == []


@pytest.mark.parametrize("key", ["", "k" * 201])
async def test_an_empty_or_overlong_idempotency_key_is_422(gateway: Gateway, key: str) -> None:
    r = await gateway.client.post("/api/holds", json=_hold(), headers={"Idempotency-Key": key})
    problem = assert_problem(r, 422, "validation_error")
    assert "Idempotency-Key" in problem["detail"]
    assert gateway.bus.sent == []


async def test_the_deployments_qty_limit_is_the_422s_limit(make_gateway: MakeGateway) -> None:
    async with make_gateway(max_qty_per_hold=3) as gw:
        gw.bus.answer(PlaceHolds, placed())
        problem = assert_problem(
            await gw.client.post("/api/holds", json=_hold(qty=4)), 422, "validation_error"
        )
        assert problem["detail"] == "qty: at most 3 units per hold"
        assert (await gw.client.post("/api/holds", json=_hold(qty=3))).status_code == 201
        assert len(gw.bus.of(PlaceHolds)) == 1


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        ("product_not_found", 404, "product_not_found"),
        ("sale_not_active", 409, "sale_not_active"),
        ("customer_limit_exceeded", 409, "customer_limit_exceeded"),
        ("customer_id_required", 422, "customer_id_required"),
        ("idempotency_key_reused", 409, "idempotency_key_reused"),
    ],
)
async def test_each_refusal_of_the_partition_has_its_status_and_code(
    gateway: Gateway, reason: str, status: int, code: str
) -> None:
    gateway.bus.answer(PlaceHolds, decided(HoldRefused(reason=reason)))
    problem = assert_problem(await gateway.client.post("/api/holds", json=_hold()), status, code)
    assert "7" in problem["detail"] or code == "idempotency_key_reused"
    assert "available" not in problem


async def test_insufficient_stock_says_how_many_are_available(gateway: Gateway) -> None:
    gateway.bus.answer(PlaceHolds, decided(HoldRefused(reason="insufficient_stock", available=2)))
    problem = assert_problem(
        await gateway.client.post("/api/holds", json=_hold(qty=3)), 409, "insufficient_stock"
    )
    assert problem["available"] == 2


async def test_an_undecidable_product_is_503_product_unavailable_retry_after_30(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(PlaceHolds, decided(HoldRefused(reason="product_undecidable")))
    r = await gateway.client.post("/api/holds", json=_hold())
    assert_problem(r, 503, "product_unavailable")
    assert r.headers["Retry-After"] == "30"


async def test_sold_out_is_answered_from_the_stock_levels_without_asking_the_partition(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(PlaceHolds, placed(available=0, levels={7: Level(available=0, version=3)}))
    assert (await gateway.client.post("/api/holds", json=_hold())).status_code == 201
    problem = assert_problem(
        await gateway.client.post("/api/holds", json=_hold()), 409, "insufficient_stock"
    )
    assert problem["available"] == 0
    assert len(gateway.bus.of(PlaceHolds)) == 1  # the second never left the process


async def test_the_stock_levels_refuse_nothing_while_the_broker_is_away(gateway: Gateway) -> None:
    gateway.requester.snapshot.apply_levels(
        {7: Level(available=0, version=3)}, gateway.requester.snapshot.wall()
    )
    gateway.bus.open = False
    gateway.bus.answer(PlaceHolds, raising(broker_down()))
    assert_problem(await gateway.client.post("/api/holds", json=_hold()), 503, "unavailable")


@pytest.mark.parametrize(
    ("failure", "detail"),
    [
        (decided(None), "no inventory decision in time; the hold was not placed"),
        (raising(broker_down()), "the message broker is unavailable; the hold was not placed"),
        (raising(broker_refused()), "the message broker is unavailable; the hold was not placed"),
        (raising(confirm_lost()), "the outcome is unknown: the hold may have been placed"),
        (
            raising(ReplyTimeout("no reply")),
            "the outcome is unknown: the hold may have been placed",
        ),
    ],
    ids=["dropped_past_deadline", "broker_down", "broker_refused", "confirm_lost", "no_reply"],
)
async def test_no_decision_is_503_unavailable_with_retry_after_saying_what_is_known(
    gateway: Gateway, failure: Any, detail: str
) -> None:
    gateway.bus.answer(PlaceHolds, failure)
    r = await gateway.client.post("/api/holds", json=_hold())
    problem = assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"
    assert problem["detail"].startswith(detail), problem
    if "unknown" in detail:
        assert problem["detail"].endswith("send an Idempotency-Key to retry safely")


async def test_too_many_holds_waiting_for_a_partition_are_429_overloaded(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(hold_batch_max_waiting=1, hold_batches_in_flight=1) as gw:
        release = asyncio.Event()
        gw.bus.answer(PlaceHolds, placed_once(release))
        first = asyncio.ensure_future(gw.client.post("/api/holds", json=_hold()))
        await gw.bus.first_sent()  # its envelope is out, unanswered
        second = asyncio.ensure_future(gw.client.post("/api/holds", json=_hold()))
        await asyncio.sleep(0.01)  # waits behind it
        r = await gw.client.post("/api/holds", json=_hold())
        problem = assert_problem(r, 429, "overloaded")
        assert (r.headers["Retry-After"], r.headers["Retry-After-Ms"]) == ("1", "200")
        assert problem["retry_after_ms"] == 200
        release.set()
        assert [(await f).status_code for f in (first, second)] == [201, 201]


async def test_one_customer_asking_too_fast_is_429_rate_limited_with_retry_after(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(customer_rate_per_second=0.1, customer_rate_burst=1) as gw:
        gw.bus.answer(PlaceHolds, placed())
        body = _hold(customer_id="c-1")
        assert (await gw.client.post("/api/holds", json=body)).status_code == 201
        r = await gw.client.post("/api/holds", json=body)
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        other = await gw.client.post("/api/holds", json=_hold(customer_id="c-2"))
        assert other.status_code == 201
        assert len(gw.bus.of(PlaceHolds)) == 2


async def test_a_keyed_hold_with_the_database_away_is_503_and_nothing_is_sent(
    gateway: Gateway,
) -> None:
    r = await gateway.client.post(
        "/api/holds", json=_hold(), headers={"Idempotency-Key": f"k-{uuid.uuid4()}"}
    )
    problem = assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"
    assert problem["detail"].startswith("the database is unavailable; no hold was placed")
    assert gateway.bus.sent == []


async def test_a_malformed_hold_id_is_404_without_a_database_read(gateway: Gateway) -> None:
    assert_problem(await gateway.client.get("/api/holds/not-a-uuid"), 404, "hold_not_found")
