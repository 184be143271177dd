"""The money rule on plain values: only the order's exact amount pays it, on both paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.orders import domain as orders
from workers.payments import domain as payments

pytestmark = pytest.mark.unit

amounts = st.integers(0, 10**9)


@given(order=amounts, paid=amounts)
def test_a_success_pays_a_pending_order_only_with_its_exact_amount(order: int, paid: int) -> None:
    action = payments.decide_payment("pending", True, "success", paid_cents=paid, order_cents=order)
    assert action == ("mark_paid" if paid == order else "rejected")


def test_a_success_without_an_amount_is_trusted() -> None:
    assert payments.decide_payment("pending", True, "success", order_cents=5) == "mark_paid"


@given(order=amounts, paid=st.none() | amounts)
def test_a_failure_cancels_whatever_amount_it_names(order: int, paid: int | None) -> None:
    action = payments.decide_payment("pending", True, "failed", paid_cents=paid, order_cents=order)
    assert action == "release"


@given(status=st.sampled_from(["paid", "cancelled"]), paid=amounts)
def test_a_terminal_order_ignores_any_amount(status: str, paid: int) -> None:
    action = payments.decide_payment(status, True, "success", paid_cents=paid, order_cents=10)
    assert action == "ignored"


events = st.lists(
    st.tuples(st.sampled_from(["success", "failed"]), st.none() | st.sampled_from([1, 99, 100])),
    max_size=8,
)


@given(script=events)
def test_payments_before_the_order_settle_it_by_the_first_that_counts(
    script: list[tuple[str, int | None]],
) -> None:
    order_cents = 100
    pending = [
        orders.PendingEvent(f"k{i}", status, amount)  # type: ignore[arg-type]
        for i, (status, amount) in enumerate(script)
    ]
    s = orders.settle_pending(pending, order_cents)
    mismatched = {
        e.idempotency_key
        for e in pending
        if e.status == "success" and e.amount_cents not in (None, order_cents)
    }
    assert {k for k, r in s.results.items() if r == "rejected"} == mismatched
    counting = [e for e in pending if e.idempotency_key not in mismatched]
    applied = [k for k, r in s.results.items() if r == "applied"]
    if not counting:
        assert (s.order_status, s.release, applied) == ("pending", False, [])
        return
    first = counting[0]
    assert applied == [first.idempotency_key]
    assert s.order_status == ("paid" if first.status == "success" else "pending")
    assert s.release == (first.status == "failed")
    assert set(s.results) == {e.idempotency_key for e in pending}


def test_a_1_cent_success_received_first_does_not_pay_a_15000_cent_order() -> None:
    s = orders.settle_pending([orders.PendingEvent("cheap", "success", 1)], 15_000)
    assert s.order_status == "pending" and s.results == {"cheap": "rejected"}
