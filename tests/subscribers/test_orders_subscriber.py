"""orders.commands through FastStream in process: a CreateOrder as the gateway encodes it
reaches the handler, its reply is what the gateway reads, the follow-ups are published after
it, and a failure is settled (dead-lettered or sent back) as the failure middleware says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from shared import topology
from shared.messages import (
    CreateOrder,
    ExpireOrder,
    OrderCreated,
    OrderRefused,
    OrderReply,
    ReleaseOrderStock,
    utcnow,
)
from tests.subscribers.conftest import Worker, subscribed
from workers.orders import handlers
from workers.orders.subscriber import register

pytestmark = pytest.mark.subscribers

_reply: TypeAdapter[OrderReply] = TypeAdapter(OrderReply)


@pytest.fixture
async def orders() -> AsyncIterator[Worker]:
    async with subscribed("orders", register, topology.ORDERS_QUEUE_NAME) as w:
        yield w


def _command(**kw: Any) -> CreateOrder:
    return CreateOrder(order_id=uuid.uuid4(), hold_id=uuid.uuid4(), client_id="shop", **kw)


def _created(cmd: CreateOrder, status: str = "pending") -> OrderCreated:
    return OrderCreated(
        order_id=cmd.order_id,
        hold_id=cmd.hold_id,
        product_id=42,
        qty=2,
        amount_cents=2000,
        status=status,
        payment_method=cmd.payment_method,
    )


class Deciding:
    """handlers.create_order as a test wants it to decide; keeps what it was given."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.seen: list[CreateOrder] = []

    async def __call__(self, engine: Any, settings: Any, cmd: CreateOrder, clock: Any) -> Any:
        self.seen.append(cmd)
        outcome = self.outcome(cmd) if callable(self.outcome) else self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_a_created_order_is_the_reply_and_its_payment_window_is_scheduled(
    orders: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    pay_by = utcnow() + timedelta(minutes=15)
    decide = Deciding(lambda cmd: handlers.Outcome(_created(cmd), pay_by=pay_by))
    monkeypatch.setattr(handlers, "create_order", decide)
    cmd = _command(idempotency_key="cart-1", request_hash="h" * 64)
    reply = _reply.validate_json(await orders.send(cmd))
    assert reply == _created(cmd).model_copy(
        update={"message_id": reply.message_id, "occurred_at": reply.occurred_at}
    )
    [seen] = decide.seen
    assert seen == cmd  # the contract survives the wire whole
    [expiry] = orders.bus.published
    exchange, _ = topology.order_delay(orders.ctx.settings.payment_window_seconds)
    assert isinstance(expiry.message, ExpireOrder)
    assert (expiry.exchange, expiry.routing_key) == (
        exchange.name,
        topology.product_routing_key(42, orders.ctx.settings.partitions),
    )
    assert (expiry.message.order_id, expiry.message.product_id) == (cmd.order_id, 42)


async def test_an_order_whose_payment_failed_first_releases_its_stock_through_the_partition(
    orders: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = Deciding(lambda cmd: handlers.Outcome(_created(cmd, "cancelled"), release_key="evt-9"))
    monkeypatch.setattr(handlers, "create_order", decide)
    cmd = _command()
    reply = _reply.validate_json(await orders.send(cmd))
    assert isinstance(reply, OrderCreated) and reply.status == "cancelled"
    [release] = orders.bus.published
    assert isinstance(release.message, ReleaseOrderStock)
    assert release.exchange == topology.INVENTORY_EXCHANGE.name
    assert release.routing_key == topology.product_routing_key(42, orders.ctx.settings.partitions)
    assert (release.message.order_id, release.message.payment_key) == (cmd.order_id, "evt-9")


@pytest.mark.parametrize("reason", ["hold_not_found", "hold_expired", "hold_already_used"])
async def test_a_refusal_is_the_reply_and_nothing_is_published(
    orders: Worker, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    existing = uuid.uuid4() if reason == "hold_already_used" else None
    outcome = handlers.Outcome(OrderRefused(reason=reason, order_id=existing))
    monkeypatch.setattr(handlers, "create_order", Deciding(outcome))
    reply = _reply.validate_json(await orders.send(_command()))
    assert isinstance(reply, OrderRefused)
    assert (reply.reason, reply.order_id) == (reason, existing)
    assert orders.bus.published == []


async def test_an_empty_idempotency_key_reaches_the_handler_as_no_key(
    orders: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = Deciding(handlers.Outcome(OrderRefused(reason="hold_not_found")))
    monkeypatch.setattr(handlers, "create_order", decide)
    await orders.send(_command(idempotency_key=""))
    assert decide.seen[0].idempotency_key is None


async def test_a_decision_error_is_dead_lettered_at_once_with_its_reason(
    orders: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "create_order", Deciding(ValueError("cannot decide this")))
    cmd = _command()
    await orders.deliver(cmd)
    [(body, headers)] = orders.dead
    assert CreateOrder.model_validate_json(body) == cmd
    assert headers["flashsale-reason"] == "decision_error"
    assert headers["flashsale-error-type"] == "ValueError"
    assert headers["flashsale-source-queue"] == orders.queue
    assert orders.bus.published == []


async def test_a_passing_fault_is_retried_in_place_and_then_decided(
    orders: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders.ctx.settings = orders.ctx.settings.model_copy(update={"transient_retry_seconds": 5.0})
    calls = {"n": 0}

    def flaky(cmd: CreateOrder) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return ConnectionResetError(104, "the database went away")
        return handlers.Outcome(OrderRefused(reason="hold_expired"))

    monkeypatch.setattr(handlers, "create_order", Deciding(flaky))
    reply = _reply.validate_json(await orders.send(_command()))
    assert isinstance(reply, OrderRefused) and reply.reason == "hold_expired"
    assert calls["n"] == 2
    assert orders.dead == []
