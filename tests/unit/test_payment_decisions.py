"""The payments worker's decisions without I/O: a key seen before, and what an event does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.messages import RecordPayment
from workers.payments import domain

pytestmark = pytest.mark.unit


def _event(**kw: Any) -> RecordPayment:
    fields: dict[str, Any] = {
        "idempotency_key": "evt-1",
        "order_id": uuid.uuid4(),
        "status": "success",
        "amount_cents": 500,
        "payload": {},
        "payload_hash": "h",
        **kw,
    }
    return RecordPayment.model_validate(fields)


def _order(**kw: Any) -> domain.OrderView:
    fields: dict[str, Any] = {
        "order_id": uuid.uuid4(),
        "product_id": 1,
        "status": "pending",
        "amount_cents": 500,
        "cancelled_by": None,
        **kw,
    }
    return domain.OrderView(**fields)


@pytest.mark.parametrize(
    ("stored", "seen"),
    [
        (None, "new"),
        (domain.EventView("other", "applied", None), "key_reused"),
        (domain.EventView("h", "applied", None), "duplicate"),
        (domain.EventView("h", "ignored", None), "duplicate"),
        (domain.EventView("h", "rejected", "amount_mismatch"), "duplicate"),
        (domain.EventView("h", "pending_order", None), "resume"),
        (domain.EventView("h", None, None), "resume"),  # stopped before the partition answered
    ],
)
def test_a_key_seen_before(stored: domain.EventView | None, seen: str) -> None:
    assert domain.seen_before("h", stored) == seen


def test_an_order_this_event_cancelled_gets_the_same_result_again() -> None:
    cmd = _event(status="failed")
    cancelled = _order(status="cancelled", cancelled_by="payment:evt-1")
    assert domain.decide(cmd, domain.PaymentState(cancelled)) == "applied_again"
    by_another = _order(status="cancelled", cancelled_by="payment:evt-0")
    assert domain.decide(cmd, domain.PaymentState(by_another)) == "ignored"


@given(
    status=st.sampled_from(["pending", "paid", "cancelled"]),
    outcome=st.sampled_from(["success", "failed"]),
    paid=st.one_of(st.none(), st.integers(0, 1000)),
    failure_applied=st.booleans(),
)
def test_only_a_success_of_the_exact_amount_pays_and_only_a_pending_order(
    status: str, outcome: str, paid: int | None, failure_applied: bool
) -> None:
    cmd = _event(status=outcome, amount_cents=paid)
    state = domain.PaymentState(_order(status=status), failure_applied=failure_applied)
    action = domain.decide(cmd, state)
    if action == "mark_paid":
        assert status == "pending" and outcome == "success" and not failure_applied
        assert paid is None or paid == 500
    if status != "pending" or failure_applied:
        assert action == "ignored"


def test_an_event_without_its_order_waits_for_it_while_the_hold_may_still_convert() -> None:
    cmd = _event(order_id=None, hold_id=uuid.uuid4())
    assert domain.decide(cmd, domain.PaymentState(None, hold_can_still_convert=True)) == (
        "pending_order"
    )
    assert domain.decide(cmd, domain.PaymentState(None, hold_can_still_convert=False)) == "ignored"
