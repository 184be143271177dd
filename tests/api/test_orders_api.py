"""POST /api/orders in process: validation, each refusal of the orders worker, a late answer
(202) and the broker away (503), with the worker faked at the broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared import topology
from shared.bus import ReplyTimeout
from shared.messages import CreateOrder, OrderRefused
from tests.api.conftest import Gateway, MakeGateway
from tests.api.fakes import broker_down, broker_refused, confirm_lost, order_created, raising
from tests.helpers import assert_problem

pytestmark = pytest.mark.api


def _order(hold_id: uuid.UUID | None = None, **kw: Any) -> dict[str, Any]:
    return {"hold_id": str(hold_id or uuid.uuid4()), **kw}


def _refusal(reason: str, order_id: uuid.UUID | None = None) -> Any:
    return lambda _: OrderRefused(reason=reason, order_id=order_id)


async def test_a_created_order_is_201_with_its_location_answered_from_the_reply(
    gateway: Gateway,
) -> None:
    """The database is away after the worker made the order: the answer is the reply's."""
    gateway.bus.answer(CreateOrder, order_created(amount_cents=2500))
    hold_id = uuid.uuid4()
    r = await gateway.client.post(
        "/api/orders", json=_order(hold_id, payment_method="cash_on_delivery")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["Location"] == f"/api/orders/{body['order_id']}"
    assert (body["hold_id"], body["amount_cents"], body["status"]) == (
        str(hold_id),
        2500,
        "pending",
    )
    assert body["payment_method"] == "cash_on_delivery"
    [sent] = gateway.bus.sent
    assert (sent.exchange, sent.routing_key) == (
        topology.COMMANDS_EXCHANGE.name,
        topology.ORDERS_QUEUE_NAME,
    )
    assert sent.expires is False  # durable in the queue: decided even after the deadline
    assert str(sent.message.order_id) == body["order_id"] and sent.message.hold_id == hold_id


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"hold_id": 5},
        {"hold_id": ""},
        {"hold_id": "x" * 101},
        {"hold_id": "x", "payment_method": "barter"},
        {"hold_id": "x", "y": 1},
    ],
)
async def test_invalid_order_requests_are_422(gateway: Gateway, body: dict[str, object]) -> None:
    problem = assert_problem(
        await gateway.client.post("/api/orders", json=body), 422, "validation_error"
    )
    assert problem["instance"] == "/api/orders"
    assert gateway.bus.sent == []


async def test_an_empty_idempotency_key_on_an_order_is_422(gateway: Gateway) -> None:
    r = await gateway.client.post("/api/orders", json=_order(), headers={"Idempotency-Key": ""})
    assert_problem(r, 422, "validation_error")
    assert gateway.bus.sent == []


async def test_a_hold_id_that_is_no_uuid_is_404_without_asking_the_worker(gateway: Gateway) -> None:
    r = await gateway.client.post("/api/orders", json={"hold_id": "not-a-uuid"})
    assert_problem(r, 404, "hold_not_found")
    assert_problem(await gateway.client.get("/api/orders/not-a-uuid"), 404, "order_not_found")
    assert gateway.bus.sent == []


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("hold_not_found", 404),
        ("hold_expired", 409),
        ("idempotency_key_reused", 409),
    ],
)
async def test_each_refusal_of_the_orders_worker_has_its_status_and_code(
    gateway: Gateway, reason: str, status: int
) -> None:
    gateway.bus.answer(CreateOrder, _refusal(reason))
    problem = assert_problem(
        await gateway.client.post("/api/orders", json=_order()), status, reason
    )
    assert "order_id" not in problem


async def test_a_hold_already_used_names_its_order(gateway: Gateway) -> None:
    existing = uuid.uuid4()
    gateway.bus.answer(CreateOrder, _refusal("hold_already_used", existing))
    problem = assert_problem(
        await gateway.client.post("/api/orders", json=_order()), 409, "hold_already_used"
    )
    assert problem["order_id"] == str(existing) and str(existing) in problem["detail"]


async def test_a_late_answer_is_202_with_the_order_id_it_will_have(gateway: Gateway) -> None:
    gateway.bus.answer(CreateOrder, raising(ReplyTimeout("no reply within 2.0 s")))
    r = await gateway.client.post("/api/orders", json=_order())
    assert r.status_code == 202, r.text
    [cmd] = gateway.bus.of(CreateOrder)
    assert r.json()["order_id"] == str(cmd.order_id)
    assert r.headers["Location"] == f"/api/orders/{cmd.order_id}"
    assert r.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("failure", "detail"),
    [
        (broker_down(), "the message broker is unavailable; CreateOrder was not sent"),
        (broker_refused(), "the message broker is unavailable; CreateOrder was not sent"),
        (confirm_lost(), "the outcome is unknown: CreateOrder may have been applied"),
    ],
    ids=["broker_down", "broker_refused", "confirm_lost"],
)
async def test_the_broker_away_is_503_unavailable_with_retry_after(
    gateway: Gateway, failure: Exception, detail: str
) -> None:
    gateway.bus.answer(CreateOrder, raising(failure))
    r = await gateway.client.post("/api/orders", json=_order())
    problem = assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"
    assert problem["detail"].startswith(detail), problem


async def test_too_many_commands_in_flight_are_429_overloaded(make_gateway: MakeGateway) -> None:
    async with make_gateway(max_in_flight=0) as gw:
        r = await gw.client.post("/api/orders", json=_order())
        assert_problem(r, 429, "overloaded")
        assert r.headers["Retry-After"] == "1"
        assert gw.bus.sent == []


async def test_a_keyed_order_with_the_database_away_is_503_and_nothing_is_sent(
    gateway: Gateway,
) -> None:
    r = await gateway.client.post("/api/orders", json=_order(), headers={"Idempotency-Key": "k-1"})
    problem = assert_problem(r, 503, "unavailable")
    assert problem["detail"].startswith("the database is unavailable; no order was created")
    assert gateway.bus.sent == []
