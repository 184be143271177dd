"""The orders worker's decision, without I/O: one order per hold, only from a live hold of the
storefront asking, an order made already answered again, payments that came first settled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.messages import CreateOrder
from workers.orders import domain

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _cmd(**kw: object) -> CreateOrder:
    fields: dict[str, object] = {
        "order_id": uuid.uuid4(),
        "hold_id": uuid.uuid4(),
        "client_id": "shop",
        "idempotency_key": None,
        "request_hash": None,
        **kw,
    }
    return CreateOrder.model_validate(fields)


def _hold(cmd: CreateOrder, **kw: object) -> domain.HoldView:
    fields: dict[str, object] = {
        "hold_id": cmd.hold_id,
        "product_id": 7,
        "qty": 3,
        "status": "active",
        "expires_at": NOW + timedelta(seconds=30),
        "customer_id": None,
        "order_id": None,
        "client_id": cmd.client_id,
        **kw,
    }
    return domain.HoldView(**fields)  # type: ignore[arg-type]


def _order(cmd: CreateOrder, **kw: object) -> domain.OrderView:
    fields: dict[str, object] = {
        "order_id": cmd.order_id,
        "hold_id": cmd.hold_id,
        "product_id": 7,
        "qty": 3,
        "amount_cents": 300,
        "status": "pending",
        "payment_method": "online",
        "pay_by": NOW + WINDOW,
        "request_hash": cmd.request_hash,
        **kw,
    }
    return domain.OrderView(**fields)  # type: ignore[arg-type]


def test_a_live_hold_becomes_an_order_of_its_qty_at_the_products_price() -> None:
    cmd = _cmd()
    decision = domain.decide(cmd, domain.OrderState(hold=_hold(cmd), price_cents=100), NOW, WINDOW)
    assert isinstance(decision, domain.OrderCreated)
    assert decision.amount_cents == 300 and decision.pay_by == NOW + WINDOW
    assert decision.settlement.order_status == "pending" and decision.release_key is None


def test_cash_on_delivery_has_no_payment_deadline() -> None:
    cmd = _cmd(payment_method="cash_on_delivery")
    decision = domain.decide(cmd, domain.OrderState(hold=_hold(cmd), price_cents=100), NOW, WINDOW)
    assert isinstance(decision, domain.OrderCreated) and decision.pay_by is None


def test_payments_that_came_first_settle_the_new_order() -> None:
    cmd = _cmd()
    pending = [
        domain.PendingEvent("wrong-amount", "success", 299),
        domain.PendingEvent("failed", "failed"),
        domain.PendingEvent("late", "success", 300),
    ]
    state = domain.OrderState(hold=_hold(cmd), price_cents=100, pending=pending)
    decision = domain.decide(cmd, state, NOW, WINDOW)
    assert isinstance(decision, domain.OrderCreated)
    assert decision.settlement.results == {
        "wrong-amount": "rejected",
        "failed": "applied",
        "late": "ignored",
    }
    assert decision.release_key == "failed" and decision.rejected == ["wrong-amount"]


def test_an_order_this_command_made_is_answered_again_with_its_follow_ups() -> None:
    cmd = _cmd(idempotency_key="k", request_hash="h")
    state = domain.OrderState(existing=_order(cmd), failed_key="f")
    assert domain.decide(cmd, state, NOW, WINDOW) == domain.OrderReplayed(
        state.existing,  # type: ignore[arg-type]
        NOW + WINDOW,
        "f",
    )
    paid = domain.OrderState(existing=_order(cmd, status="paid"), failed_key=None)
    replay = domain.decide(cmd, paid, NOW, WINDOW)
    assert isinstance(replay, domain.OrderReplayed) and (replay.pay_by, replay.release_key) == (
        None,
        None,
    )


@pytest.mark.parametrize(
    "existing", [{"hold_id": uuid.uuid4()}, {"request_hash": "another request"}]
)
def test_a_key_reused_for_another_request_is_refused(existing: dict[str, object]) -> None:
    cmd = _cmd(idempotency_key="k", request_hash="h")
    order = _order(cmd, **existing)
    decision = domain.decide(cmd, domain.OrderState(existing=order), NOW, WINDOW)
    assert decision == domain.OrderRefused("idempotency_key_reused", cmd.order_id)


@given(
    status=st.sampled_from(["active", "expired", "released", "converted"]),
    expires_in=st.integers(-120, 120),
    same_client=st.booleans(),
    known=st.booleans(),
)
def test_an_order_is_created_only_from_a_live_hold_of_the_storefront_asking(
    status: str, expires_in: int, same_client: bool, known: bool
) -> None:
    cmd = _cmd()
    hold = _hold(
        cmd,
        status=status,
        expires_at=NOW + timedelta(seconds=expires_in),
        client_id=cmd.client_id if same_client else "another shop",
    )
    state = domain.OrderState(hold=hold if known else None, price_cents=100)
    decision = domain.decide(cmd, state, NOW, WINDOW)
    live = known and same_client and status == "active" and expires_in > 0
    assert isinstance(decision, domain.OrderCreated) == live
    if not live:
        assert isinstance(decision, domain.OrderRefused)
        if not known or not same_client:
            assert decision.reason == "hold_not_found"  # another's hold does not exist for it
